package main

import (
	"context"
	"fmt"

	"ottr.im/ottr/config"
)

// runCheckConfig implements "ottr check-config": it loads the file and, if
// it is valid, prints the values in force and "config OK"; otherwise it
// fails with the error, which names the file and each key at fault.
func runCheckConfig(_ context.Context, e *env, args []string) error {
	f := newFlagSet("check-config", "-c FILE")
	cfgPath := f.configFlag()
	if err := f.parse(e, args); err != nil {
		return err
	}
	// The file may also be given as the argument: ottr check-config FILE.
	if *cfgPath == "" && f.NArg() == 1 {
		*cfgPath = f.Arg(0)
	} else if err := f.nArgs(0, ""); err != nil {
		return err
	}
	if *cfgPath == "" {
		return f.usageErr("missing -c FILE")
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprint(e.stdout, cfg.Summary()); err != nil {
		return err
	}
	if records := srvRecords(cfg); len(records) > 0 {
		fmt.Fprintln(e.stdout, "DNS SRV records for these listeners (RFC 6120 §3.2.1, XEP-0368):")
		for _, r := range records {
			fmt.Fprintln(e.stdout, "  "+r)
		}
	}
	_, err = fmt.Fprintln(e.stdout, "config OK")
	return err
}
