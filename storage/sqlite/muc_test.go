package sqlite

import (
	"testing"

	"ottr.im/ottr/storage/storagetest"
)

func TestMUC(t *testing.T) {
	storagetest.TestMUC(t, func(t *testing.T) storagetest.MUCStore { return newTestStore(t) })
}
