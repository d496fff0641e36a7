package config

import (
	"fmt"
	"strings"

	"mellium.im/xmpp/jid"
)

// Components holds the external components' settings, the [components]
// table (XEP-0114, the Jabber Component Protocol): an app server, a bot or
// a bridge connects to Listen, names its domain and proves the shared
// secret; its domain then routes like a local one. Off unless Listen
// lists an address.
type Components struct {
	// Listen are host:port addresses accepting component connections
	// (plain TCP: keep them on loopback or a private network). Default
	// none.
	Listen []string `toml:"listen"`
	// Services are the components accepted, one [[components.service]]
	// table each.
	Services []ComponentService `toml:"service"`
}

// ComponentService is one component accepted.
type ComponentService struct {
	// Name is the component's domain, such as push.example.org; not one
	// of the served hosts.
	Name string `toml:"name"`
	// Secret is the secret shared with the component, at least 16
	// characters.
	Secret string `toml:"secret"`
}

// minComponentSecret is the shortest components.service secret.
const minComponentSecret = 16

// validate checks the services against the served hosts; each error
// starts with "components.".
func (c Components) validate(hosts []Host) []error {
	var errs []error
	seen := make(map[string]bool)
	for i, s := range c.Services {
		key := fmt.Sprintf("components.service[%d]", i)
		d, err := jid.New("", s.Name, "")
		switch {
		case s.Name == "" || err != nil:
			errs = append(errs, fmt.Errorf("%s.name: %q is not a domain", key, s.Name))
			continue
		case seen[d.Domainpart()]:
			errs = append(errs, fmt.Errorf("%s.name: %q is listed twice", key, s.Name))
		}
		seen[d.Domainpart()] = true
		for _, h := range hosts {
			if strings.EqualFold(h.Name, d.Domainpart()) {
				errs = append(errs, fmt.Errorf("%s.name: %q is a served host", key, s.Name))
			}
		}
		if len(s.Secret) < minComponentSecret {
			errs = append(errs, fmt.Errorf("%s.secret: must be at least %d characters", key, minComponentSecret))
		}
	}
	if len(c.Listen) > 0 && len(c.Services) == 0 {
		errs = append(errs, fmt.Errorf("components.listen: no [[components.service]]: no component could connect"))
	}
	return errs
}

// writeComponents writes the [components] settings for Summary, the
// secrets redacted.
func writeComponents(b *strings.Builder, c Components) {
	fmt.Fprintf(b, "[components]\nlisten = %s\n", quoteList(c.Listen))
	for _, s := range c.Services {
		fmt.Fprintf(b, "[[components.service]]\nname = %q\nsecret = %s\n", s.Name, redact(s.Secret))
	}
}
