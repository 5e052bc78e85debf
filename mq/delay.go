package mq

import "time"

// delayLevels are the broker's default messageDelayLevel values ("1s 5s 10s 30s 1m ... 2h"),
// which consumer retries use: level i+1 waits delayLevels[i].
var delayLevels = [...]time.Duration{
	time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute,
	3 * time.Minute, 4 * time.Minute, 5 * time.Minute, 6 * time.Minute, 7 * time.Minute, 8 * time.Minute,
	9 * time.Minute, 10 * time.Minute, 20 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour,
}

// DelayLevelFor returns the smallest retry delay level that waits at least d, for
// ConsumeConcurrentlyContext.DelayLevelWhenNextConsume.
func DelayLevelFor(d time.Duration) int {
	for i, l := range delayLevels {
		if l >= d {
			return i + 1
		}
	}
	return len(delayLevels)
}
