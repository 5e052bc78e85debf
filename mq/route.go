package mq

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// The client's name server code (internal/route.go in rocketmq-client-go) is internal to its
// module, and its public admin client answers FetchPublishMessageQueues from a route cached at
// first use (and shares one client per instance name with the producer), so it never sees a
// broker leave. The watch below speaks the remoting protocol itself: one JSON-encoded request
// per connection, which every RocketMQ 4.x/5.x server accepts.

// Remoting request and response codes used here (RequestCode / ResponseCode in RocketMQ).
const (
	reqGetRouteInfoByTopic = 105
	reqGetBrokerRuntime    = 28
	resSuccess             = 0
	resTopicNotExist       = 17
	// remotingVersion is the version the Go client announces (V4_9_x); servers accept any.
	remotingVersion = 317
	// maxFrame bounds a response: a route is a few KB, a runtime table a few tens.
	maxFrame = 16 << 20
)

// remotingHeader is the JSON header of a remoting frame (RemotingCommand's fields).
type remotingHeader struct {
	Code      int               `json:"code"`
	Language  string            `json:"language"`
	Version   int               `json:"version"`
	Opaque    int32             `json:"opaque"`
	Flag      int               `json:"flag"`
	Remark    string            `json:"remark,omitempty"`
	ExtFields map[string]string `json:"extFields,omitempty"`
}

// remoting sends single requests over fresh connections.
type remoting struct {
	opaque atomic.Int32
}

// invoke sends one request to addr and returns the response's header and body. ctx bounds
// the connect and the exchange.
func (r *remoting) invoke(ctx context.Context, addr string, code int, ext map[string]string) (remotingHeader, []byte, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return remotingHeader{}, nil, err
	}
	defer conn.Close() //nolint:errcheck // nothing to do about a failed close
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	req := remotingHeader{Code: code, Language: "GO", Version: remotingVersion, Opaque: r.opaque.Add(1), ExtFields: ext}
	if _, err := conn.Write(encodeFrame(req)); err != nil {
		return remotingHeader{}, nil, fmt.Errorf("write request %d: %w", code, err)
	}
	var size int32
	if err := binary.Read(conn, binary.BigEndian, &size); err != nil {
		return remotingHeader{}, nil, fmt.Errorf("read response to %d: %w", code, err)
	}
	if size < 4 || size > maxFrame {
		return remotingHeader{}, nil, fmt.Errorf("response to %d: frame of %d bytes", code, size)
	}
	frame := make([]byte, size)
	if _, err := io.ReadFull(conn, frame); err != nil {
		return remotingHeader{}, nil, fmt.Errorf("read response to %d: %w", code, err)
	}
	return decodeFrame(frame)
}

// encodeFrame lays out a request: total length, header length (its top byte 0: JSON), header.
func encodeFrame(h remotingHeader) []byte {
	header, _ := json.Marshal(h) // a struct of strings and ints always marshals
	var buf bytes.Buffer
	_ = binary.Write(&buf, binary.BigEndian, int32(4+len(header)))
	_ = binary.Write(&buf, binary.BigEndian, int32(len(header)))
	buf.Write(header)
	return buf.Bytes()
}

// decodeFrame splits a frame (without its total length) into header and body.
func decodeFrame(frame []byte) (remotingHeader, []byte, error) {
	var h remotingHeader
	mark := binary.BigEndian.Uint32(frame[:4])
	if codec := mark >> 24; codec != 0 {
		return h, nil, fmt.Errorf("response in codec %d, not JSON", codec)
	}
	n := int(mark & 0xFFFFFF)
	if 4+n > len(frame) {
		return h, nil, fmt.Errorf("header of %d bytes in a frame of %d", n, len(frame))
	}
	if err := json.Unmarshal(frame[4:4+n], &h); err != nil {
		return h, nil, fmt.Errorf("decode response header: %w", err)
	}
	return h, frame[4+n:], nil
}

// errTopicNotRouted is the name server's answer for a topic no broker registered.
var errTopicNotRouted = errors.New("topic not routed")

// topicRoute returns the brokers the name server at addr routes topic to: broker name →
// master address ("" when the broker's group has no master in the route).
func (r *remoting) topicRoute(ctx context.Context, addr, topic string) (map[string]string, error) {
	h, body, err := r.invoke(ctx, addr, reqGetRouteInfoByTopic, map[string]string{"topic": topic})
	if err != nil {
		return nil, fmt.Errorf("route of %s from %s: %w", topic, addr, err)
	}
	switch h.Code {
	case resSuccess:
	case resTopicNotExist:
		return nil, fmt.Errorf("route of %s from %s: %w", topic, addr, errTopicNotRouted)
	default:
		return nil, fmt.Errorf("route of %s from %s: code %d: %s", topic, addr, h.Code, h.Remark)
	}
	return parseRoute(body)
}

// parseRoute reads the brokers of a TopicRouteData body. The server writes it with fastjson,
// whose map keys are bare numbers ({0:"host:port"}), which is not JSON until quoted.
func parseRoute(body []byte) (map[string]string, error) {
	var route struct {
		BrokerDatas []struct {
			BrokerName  string            `json:"brokerName"`
			BrokerAddrs map[string]string `json:"brokerAddrs"`
		} `json:"brokerDatas"`
	}
	if err := json.Unmarshal(quoteNumberKeys(body), &route); err != nil {
		return nil, fmt.Errorf("decode route: %w", err)
	}
	out := make(map[string]string, len(route.BrokerDatas))
	for _, b := range route.BrokerDatas {
		out[b.BrokerName] = b.BrokerAddrs["0"] // brokerId 0 is the master
	}
	return out, nil
}

// quoteNumberKeys puts quotes around object keys that are bare integers, outside strings.
func quoteNumberKeys(b []byte) []byte {
	out := make([]byte, 0, len(b)+16)
	inString, escaped, keyPos := false, false, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			out = append(out, c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch {
		case c == '"':
			inString, keyPos = true, false
		case c == '{' || c == ',':
			keyPos = true
			out = append(out, c)
			continue
		case c == ' ' || c == '\n' || c == '\t' || c == '\r':
			out = append(out, c)
			continue
		case keyPos && (c == '-' || (c >= '0' && c <= '9')):
			j := i + 1
			for j < len(b) && b[j] >= '0' && b[j] <= '9' {
				j++
			}
			k := j
			for k < len(b) && (b[k] == ' ' || b[k] == '\t') {
				k++
			}
			if k < len(b) && b[k] == ':' {
				out = append(out, '"')
				out = append(out, b[i:j]...)
				out = append(out, '"')
				i = j - 1
				keyPos = false
				continue
			}
		}
		keyPos = false
		out = append(out, c)
	}
	return out
}
