package app

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	QuietRocketMQ()
	os.Exit(m.Run())
}
