package job

// Defaults for the names operators see in the RocketMQ dashboard.
const (
	DefaultTopic         = "JOB_TOPIC"
	DefaultConsumerGroup = "job-service"
	DefaultProducerGroup = "job-service-producer"
)

// Run is what a handler receives: the envelope it was sent, its decoded and validated
// arguments, and which attempt this is.
type Run[T any] struct {
	Envelope
	Args    T
	Attempt int
	RunID   int64
}
