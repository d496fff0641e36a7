package auth

import "ottr.im/ottr/limit"

// The names of the failure tables, as FailureLimits.Refused reports
// them: the [limits] keys that size them.
const (
	TableAddress = "auth_failures_per_address"
	TablePair    = "auth_failures_per_address_account"
	TableAccount = "auth_failures_per_account"
)

// observeFailures has refused told of every refusal of the failure
// tables, by table name.
func (a *Authenticator) observeFailures(refused func(table string)) {
	if refused == nil {
		return
	}
	for _, t := range []struct {
		k    *limit.Keyed
		name string
	}{{a.byAddress, TableAddress}, {a.byPair, TablePair}, {a.byAccount, TableAccount}} {
		if t.k != nil {
			t.k.OnRefuse(func() { refused(t.name) })
		}
	}
}

// SetFailureRates changes the rates and the bucket size of the failure
// tables in use, as a configuration reload does; the failures counted so
// far stay. A table that was off (a rate of 0 in New's Options) stays
// off, and Delay stays what New was given.
func (a *Authenticator) SetFailureRates(f FailureLimits) {
	if a.byAddress != nil {
		a.byAddress.SetRate(f.PerAddress, f.Burst)
	}
	if a.byPair != nil {
		a.byPair.SetRate(f.PerPair, f.Burst)
	}
	if a.byAccount != nil {
		a.byAccount.SetRate(f.PerAccount, f.Burst)
	}
}
