package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	l, err := newLogger(&buf, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	l.Debug("hidden")
	l.Info("listening", "addr", "127.0.0.1:5222")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("json format wrote %q: %v", buf.String(), err)
	}
	if rec["msg"] != "listening" || rec["addr"] != "127.0.0.1:5222" || rec["level"] != "INFO" {
		t.Errorf("json record = %v", rec)
	}

	buf.Reset()
	l, err = newLogger(&buf, "debug", "text")
	if err != nil {
		t.Fatal(err)
	}
	l.Debug("shown", "k", "v")
	if got := buf.String(); !strings.Contains(got, "level=DEBUG msg=shown k=v") {
		t.Errorf("text format wrote %q", got)
	}

	if _, err := newLogger(&buf, "info", "xml"); err == nil {
		t.Error("format xml accepted")
	}
	if _, err := newLogger(&buf, "loud", "text"); err == nil {
		t.Error("level loud accepted")
	}
}
