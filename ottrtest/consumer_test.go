package ottrtest_test

import (
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestConsumerModule runs "go test" in a copy of
// testdata/ottrtest-consumer, a module of its own that requires
// ottr.im/ottr (replaced by this repository) and logs in to an ottrtest
// server with a token and with a password, as another project's test
// would. GOFLAGS=-mod=mod lets go settle the copy's requirements with
// this repository's go.mod; the modules come from the module cache (or
// GOPROXY).
func TestConsumerModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and tests another module")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(root, "testdata", "ottrtest-consumer")
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		switch e.Name() {
		case "go.mod":
			// The copy lives elsewhere: the replacement points at this
			// repository by its absolute path.
			const rel = "replace ottr.im/ottr => ../.."
			if !strings.Contains(string(b), rel) {
				t.Fatalf("%s/go.mod has no line %q", src, rel)
			}
			b = []byte(strings.Replace(string(b), rel, "replace ottr.im/ottr => "+strconv.Quote(root), 1))
		case "go.sum":
			// With this repository's sums, so that go needs no checksum
			// database for a dependency added since the copy's go.sum.
			main, err := os.ReadFile(filepath.Join(root, "go.sum"))
			if err != nil {
				t.Fatal(err)
			}
			b = append(b, main...)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(goBin, "test", "-count=1", "-v", "./...")
	cmd.Dir = dst
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go test in the consumer module: %v\n%s", err, out)
	}
	for _, want := range []string{"--- PASS: TestTokenLogin", "--- PASS: TestPasswordLogin", "ok  \texample.com/ottrtest-consumer"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("go test output has no %q:\n%s", want, out)
		}
	}
}

// TestNoInternalImports keeps ottrtest's API usable from other modules:
// it imports no internal package, so none of its exported names can
// carry an internal type.
func TestNoInternalImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			n++
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.Contains(path, "/internal/") || strings.HasSuffix(path, "/internal") {
				t.Errorf("%s imports %s", name, path)
			}
		}
	}
	if n == 0 {
		t.Fatal("no imports found: the check looked at nothing")
	}
}
