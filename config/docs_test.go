package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/BurntSushi/toml"
)

// examplePath is the documented example configuration.
var examplePath = filepath.Join("..", "config.toml.example")

// docs is what the documentation tests read: config.toml.example decoded
// (its values and which keys it sets), its text, and the README's.
type docs struct {
	config  Config
	md      toml.MetaData
	example string
	readme  string
}

// readDocs reads config.toml.example and README.md, failing the test when
// either cannot be read or the example does not decode.
func readDocs(t *testing.T) docs {
	t.Helper()
	var d docs
	var err error
	if d.md, err = toml.DecodeFile(examplePath, &d.config); err != nil {
		t.Fatalf("DecodeFile(%s): %v", examplePath, err)
	}
	example, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	d.example, d.readme = string(example), string(readme)
	return d
}
