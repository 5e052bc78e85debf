package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/chatplat/job-service/mq"
)

// CheckNameServers dials every configured RocketMQ name server and fails, naming them, when
// none answers. The client itself only logs a refused name server and later reports a
// missing route, which does not say what is wrong.
func CheckNameServers(ctx context.Context, cfg mq.Config) error {
	var errs []string
	for _, addr := range cfg.NameServers {
		d := net.Dialer{Timeout: 3 * time.Second}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			_ = c.Close()
			return nil
		}
		var op *net.OpError
		if errors.As(err, &op) && op.Err != nil {
			err = op.Err
		}
		errs = append(errs, fmt.Sprintf("%s: %v", addr, err))
	}
	return fmt.Errorf("rocketmq.name_servers: no name server reachable (%s)", strings.Join(errs, "; "))
}
