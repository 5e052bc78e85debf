package mq

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestQuoteNumberKeys(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{`{0:"127.0.0.1:10911",1:"127.0.0.1:10921"}`, `{"0":"127.0.0.1:10911","1":"127.0.0.1:10921"}`},
		{`{ 0 :"a"}`, `{ "0" :"a"}`},
		{`{"k":[1,2,3],"n":-1}`, `{"k":[1,2,3],"n":-1}`},
		{`{"s":"{0:x}, 1:y","m":{-1:"z"}}`, `{"s":"{0:x}, 1:y","m":{"-1":"z"}}`},
		{`{"e":"a\"b,2:c"}`, `{"e":"a\"b,2:c"}`},
	} {
		require.Equal(t, tc.want, string(quoteNumberKeys([]byte(tc.in))), tc.in)
	}
}

func TestParseRoute(t *testing.T) {
	t.Parallel()
	// As namesrv 5.3.3 answers GET_ROUTEINFO_BY_TOPIC (fastjson, bare numeric map keys).
	body := `{"brokerDatas":[{"brokerAddrs":{0:"127.0.0.1:10911"},"brokerName":"broker-a","cluster":"DefaultCluster",` +
		`"enableActingMaster":false},{"brokerAddrs":{1:"127.0.0.1:10923"},"brokerName":"broker-b","cluster":"DefaultCluster"}],` +
		`"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}`
	route, err := parseRoute([]byte(body))
	require.NoError(t, err)
	require.Equal(t, map[string]string{"broker-a": "127.0.0.1:10911", "broker-b": ""}, route,
		"broker-b has only a slave: no master to take timer messages")
}
