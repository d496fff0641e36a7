package c2s

import (
	"strings"
	"unicode"
)

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

// maxClientName bounds each part of the client's name a session keeps.
const maxClientName = 64

// clientName is what the operator is shown of a client that named its
// software and device (SASL2 <user-agent/>): "software (device)", each
// cut to maxClientName bytes, control characters dropped; "" for neither.
func clientName(software, device string) string {
	clean := func(s string) string {
		s = strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return -1
			}
			return r
		}, strings.TrimSpace(s))
		if len(s) > maxClientName {
			s = strings.ToValidUTF8(s[:maxClientName], "")
		}
		return s
	}
	software, device = clean(software), clean(device)
	switch {
	case device == "":
		return software
	case software == "":
		return "(" + device + ")"
	}
	return software + " (" + device + ")"
}
