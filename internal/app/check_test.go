package app

import (
	"context"
	"net"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/mq"
)

func TestCheckNameServers(t *testing.T) {
	t.Parallel()
	err := CheckNameServers(context.Background(), mq.Config{NameServers: []string{"127.0.0.1:1", "127.0.0.1:2"}})
	require.ErrorContains(t, err, "rocketmq.name_servers: no name server reachable (127.0.0.1:1: ")
	require.ErrorContains(t, err, "127.0.0.1:2: ")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	require.NoError(t, CheckNameServers(context.Background(), mq.Config{NameServers: []string{"127.0.0.1:1", ln.Addr().String()}}),
		"one reachable name server is enough")
}
