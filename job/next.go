package job

import "time"

// NextFire returns the first occurrence of the schedule after now, or false for a job that is
// not scheduled (no schedule, disabled, or a schedule that does not parse).
func (s Spec) NextFire(now time.Time) (time.Time, bool) {
	if !s.IsEnabled() {
		return time.Time{}, false
	}
	sched, err := s.ParseSchedule()
	if err != nil {
		return time.Time{}, false
	}
	return sched.Next(now), true
}
