package main

import (
	"context"
	"fmt"
	"time"

	"ottr.im/ottr/auth"
)

// secretsSynopsis is the usage line of "ottr secrets".
const secretsSynopsis = "[-rotate HOST -c FILE [-keep DURATION]]"

// defaultKeep is how long a rotation keeps the previous pair by default.
const defaultKeep = 24 * time.Hour

// runSecretsCmd implements "ottr secrets": without flags it prints a fresh
// otp_seed and token_secret (runSecrets); with -rotate HOST it prints the
// lines of HOST's [[host]] table for a rotation: a fresh pair, and the
// pair the configuration has now as the previous one, accepted until
// -keep from now. The file is not changed: the operator pastes the lines
// in and reloads.
func runSecretsCmd(ctx context.Context, e *env, args []string) error {
	f := newFlagSet("secrets", secretsSynopsis)
	cfgPath := f.configFlag()
	host := f.String("rotate", "", "print the lines of `HOST`'s [[host]] table that rotate its secrets")
	keep := f.Duration("keep", defaultKeep, "with -rotate, how long the current pair stays accepted (previous_until is now + `DURATION`)")
	if err := f.parse(e, args); err != nil {
		return err
	}
	if err := f.nArgs(0, ""); err != nil {
		return err
	}
	if *host == "" {
		return runSecrets(ctx, e, nil)
	}
	if *cfgPath == "" {
		return f.usageErr("-rotate needs the configuration file (-c FILE) that holds the host's secrets")
	}
	if *keep <= 0 {
		return f.usageErr("-keep %v: must be positive", *keep)
	}
	cfg, onDefaults, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	h, err := configuredHost(cfg, *host, onDefaults)
	if err != nil {
		return err
	}
	if h.OTPSeed == "" {
		return fmt.Errorf("host %q has no otp_seed yet: nothing to rotate (\"ottr secrets\" prints a first pair)", h.Name)
	}
	until := time.Now().Add(*keep).UTC().Truncate(time.Second)
	_, err = fmt.Fprintf(e.stdout, `# [[host]] name = %q: the new pair, and the pair in force now as the previous one.
# Replace the host's otp_seed and token_secret with these lines, reload ottr
# (SIGHUP or "ottr ctl reload"), then move the app backend to the new pair
# before previous_until.
otp_seed = %q
token_secret = %q
previous_otp_seed = %q
previous_token_secret = %q
previous_until = %s
`, h.Name, auth.RandomBase32(seedLen), auth.RandomBase32(secretLen), h.OTPSeed, h.TokenSecret, until.Format(time.RFC3339))
	return err
}
