package c2s

// Observer is told of the events of client streams that an operator
// counts (the server's metrics). Its methods are called on the stream's
// own goroutines and must not block.
type Observer interface {
	// Login reports one SASL attempt that ran its mechanism (with SASL
	// or SASL2): condition is "" when it succeeded, else the SASL
	// failure condition the client was sent.
	Login(mechanism, condition string)
	// QueueFull reports a session closed because its send queue was
	// full: a client that does not read.
	QueueFull()
}

// observeLogin tells the Observer, if any, of an attempt with mechanism
// that ended with condition ("" for success).
func (c *Config) observeLogin(mechanism, condition string) {
	if c.Observer != nil {
		c.Observer.Login(mechanism, condition)
	}
}

// observeQueueFull tells the Observer, if any, of a session closed with
// a full send queue.
func (c *Config) observeQueueFull() {
	if c.Observer != nil {
		c.Observer.QueueFull()
	}
}
