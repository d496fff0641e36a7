package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/config"
	"ottr.im/ottr/internal/xmpptest"
)

// freeAddr returns a loopback address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// serveProc is a running "ottr serve".
type serveProc struct {
	cmd    *exec.Cmd
	stderr *xmpptest.LogBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // from Wait, once done is closed
}

// startServe runs "ottr serve -c cfg" and waits until addr accepts
// connections. The process is killed at the end of the test if still
// running.
func startServe(t *testing.T, cfg, addr string) *serveProc {
	t.Helper()
	p := &serveProc{
		cmd:    exec.Command(ottrBin, "serve", "-c", cfg),
		stderr: new(xmpptest.LogBuffer),
		done:   make(chan struct{}),
	}
	p.cmd.Dir = t.TempDir()
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("ottr serve exited: %v\nstderr:\n%s", p.err, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("ottr serve does not listen on %s: %v\nstderr:\n%s", addr, err, p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends sig to the server and returns its exit code.
func (p *serveProc) stop(t *testing.T, sig os.Signal) int {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(2 * shutdownTimeout):
		t.Fatalf("ottr serve did not stop on %v\nstderr:\n%s", sig, p.stderr.String())
		return -1
	}
}

// kill stops the server with sig, as a crash (SIGKILL) or as a clean
// stop that must exit 0 (any other signal).
func (p *serveProc) kill(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if sig != syscall.SIGKILL {
		if code := p.stop(t, sig); code != 0 {
			t.Fatalf("exit code %d on %v\nstderr:\n%s", code, sig, p.stderr.String())
		}
		return
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

func TestServeSignals(t *testing.T) {
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			addr := freeAddr(t)
			cfg := writeConfig(t, addr)
			p := startServe(t, cfg, addr)
			if code := p.stop(t, sig); code != 0 {
				t.Errorf("exit code %d, want 0\nstderr:\n%s", code, p.stderr.String())
			}
			out := p.stderr.String()
			if !strings.Contains(out, addr) {
				t.Errorf("the log does not name the address %s:\n%s", addr, out)
			}
			if strings.Contains(out, "built-in defaults") {
				t.Errorf("with -c, the defaults notice was printed:\n%s", out)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(cfg), "data", secretsFile)); !os.IsNotExist(err) {
				t.Errorf("with -c, %s was written (%v)", secretsFile, err)
			}
		})
	}
}

func TestServePortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()
	cmd := exec.Command(ottrBin, "serve", "-c", writeConfig(t, addr))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("ottr serve kept running with its port in use")
	}
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), addr) {
		t.Errorf("stderr does not name %s:\n%s", addr, stderr.String())
	}
}

// TestServeTokenLogin checks that a token printed by "ottr token" logs in
// to "ottr serve" with the same configuration, once.
func TestServeTokenLogin(t *testing.T) {
	addr := freeAddr(t)
	cfg := writeConfig(t, addr)
	p := startServe(t, cfg, addr)

	r := runOttr(t, "", "", "token", "-c", cfg, "Alice@Chat.Example.org")
	r.check(t, 0, nil, nil)
	tok := strings.TrimSpace(r.stdout)

	login := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		sess, err := xmpp.NewClientSession(ctx, jid.MustParse("alice@chat.example.org"), conn,
			xmpp.StartTLS(&tls.Config{ServerName: "chat.example.org", InsecureSkipVerify: true}),
			xmpp.SASL("", tok, auth.XToken),
			xmpp.BindResource(),
		)
		if err != nil {
			return err
		}
		return sess.Close()
	}
	if err := login(); err != nil {
		t.Errorf("login with the token: %v\nstderr:\n%s", err, p.stderr.String())
	}
	if err := login(); err == nil {
		t.Errorf("login with the same token again succeeded")
	}

	if code := p.stop(t, os.Interrupt); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
}

func TestDefaultsNotice(t *testing.T) {
	cfg := config.Default()
	var b bytes.Buffer
	printDefaultsNotice(&b, cfg)
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		abs,
		"self-signed",
		`"ottr token alice@localhost"`,
		"127.0.0.1:5222",
		"X-TOKEN",
		`"ottr user add alice@localhost"`,
		"PLAIN",
		"-c FILE",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("notice lacks %q:\n%s", want, b.String())
		}
	}
}
