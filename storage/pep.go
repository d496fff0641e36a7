package storage

import "time"

// PEPNode is one node of a user's personal eventing service (XEP-0163)
// and its configuration (XEP-0060 §16.4, the subset PEP clients use).
type PEPNode struct {
	// Node is the node's name, such as urn:xmpp:avatar:data.
	Node string
	// Access is the access model: "open", "presence" or "whitelist".
	Access string
	// MaxItems is the most items the node keeps, at least 1; publishing
	// one more removes the oldest.
	MaxItems int
	// PersistItems is pubsub#persist_items. A node that does not persist
	// items still keeps its last one, to send to contacts coming online.
	PersistItems bool
	// SendLast is pubsub#send_last_published_item: "never", "on_sub" or
	// "on_sub_and_presence".
	SendLast string
}

// PEPItem is one item published to a PEP node.
type PEPItem struct {
	// ID is the item's id, unique within its node.
	ID string
	// Payload is the item's payload, one element as XML.
	Payload []byte
	// Published is when it was published (or last replaced).
	Published time.Time
}

// PEPLimits bound what one user keeps in the PEP store.
type PEPLimits struct {
	// Nodes is the most nodes of one user.
	Nodes int
	// Bytes is the most bytes of item payloads of one user, all nodes
	// together.
	Bytes int64
}
