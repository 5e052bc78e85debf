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

// NextFires returns the next n occurrences of the schedule after now, each in the job's time
// zone (so an operator reads them as the schedule means them), or nil for a job that is not
// scheduled.
func (s Spec) NextFires(now time.Time, n int) []time.Time {
	if !s.IsEnabled() || n <= 0 {
		return nil
	}
	sched, err := s.ParseSchedule()
	if err != nil {
		return nil
	}
	loc, err := time.LoadLocation(s.TimeZone)
	if err != nil {
		return nil
	}
	out := make([]time.Time, 0, n)
	at := now
	for range n {
		at = sched.Next(at)
		if at.IsZero() {
			break
		}
		out = append(out, at.In(loc))
	}
	return out
}
