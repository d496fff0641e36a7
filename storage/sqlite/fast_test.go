package sqlite

import (
	"testing"

	"ottr.im/ottr/storage/storagetest"
)

func TestFast(t *testing.T) {
	storagetest.TestFast(t, func(t *testing.T) storagetest.FastStore { return newTestStore(t) })
}
