package storage

// PushRegistration is one app server a user's client enabled push
// notifications with (XEP-0357).
type PushRegistration struct {
	// Service is the app server's JID.
	Service string
	// Node is the node the notifications are published to.
	Node string
	// Options is the publish-options data form as XML, empty when the
	// client gave none.
	Options []byte
}
