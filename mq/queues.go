package mq

import (
	"fmt"
	"reflect"
	"slices"

	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// Queues lists the message queues the client holds after its last rebalance, as
// "broker/topic/queue", sorted; nil when the client cannot say. The push consumer reports them
// only through GetConsumerRunningInfo, whose result type sits in the client's internal package,
// so it is read by reflection: a client version that renames it makes this nil, never a crash.
func (p *Push) Queues() (out []string) {
	if p == nil {
		return nil
	}
	defer func() {
		if recover() != nil {
			out = nil
		}
	}()
	m := reflect.ValueOf(p.pc).MethodByName("GetConsumerRunningInfo")
	if !m.IsValid() || m.Type().NumIn() != 1 || m.Type().NumOut() != 1 {
		return nil
	}
	info := m.Call([]reflect.Value{reflect.ValueOf(false)})[0]
	if info.Kind() == reflect.Pointer {
		if info.IsNil() {
			return nil
		}
		info = info.Elem()
	}
	table := info.FieldByName("MQTable")
	if !table.IsValid() || table.Kind() != reflect.Map {
		return nil
	}
	for _, k := range table.MapKeys() {
		if q, ok := k.Interface().(primitive.MessageQueue); ok {
			out = append(out, fmt.Sprintf("%s/%s/%d", q.BrokerName, q.Topic, q.QueueId))
		}
	}
	slices.Sort(out)
	return out
}
