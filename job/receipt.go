package job

// Receipt says where the broker stored a published message: its id, and the broker and queue
// the producer sent it to. The ledger keeps it with a scheduled run so the repair pass knows
// which runs wait on a broker that left the cluster (their timer messages are on its disk only).
type Receipt struct {
	MsgID  string
	Broker string
	Queue  int
}
