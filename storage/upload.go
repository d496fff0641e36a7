package storage

import (
	"errors"
	"time"
)

// UploadState is where an HTTP upload slot (XEP-0363) stands.
type UploadState int

// The states of a slot, in the order a slot goes through them.
const (
	// UploadPending: the slot was issued; its PUT may start until
	// Expires.
	UploadPending UploadState = iota
	// UploadWriting: a PUT is writing the file now; no other may.
	UploadWriting
	// UploadDone: the file is stored and served.
	UploadDone
	// UploadDeleted: the owner's account was deleted; the file is to be
	// removed from disk and is no longer served.
	UploadDeleted
)

// ErrUploadExpired is wrapped when a slot's PUT comes after it expired;
// ErrUploadUsed when the slot was used already or is being used.
var (
	ErrUploadExpired = errors.New("storage: upload slot expired")
	ErrUploadUsed    = errors.New("storage: upload slot used")
)

// UploadSlot is one HTTP upload slot (XEP-0363) and, once done, the file
// it received.
type UploadSlot struct {
	// ID is the slot's random identifier, the name of its file on disk.
	ID string
	// Host and Username are the owner's.
	Host, Username string
	// Filename, Size and ContentType are what the owner asked for: the
	// file's name for downloads, its exact length, and its media type.
	Filename    string
	Size        int64
	ContentType string
	// State is where the slot stands.
	State UploadState
	// Created is when the slot was issued; Expires when its PUT may no
	// longer start; Uploaded when the file was complete (zero before).
	Created, Expires, Uploaded time.Time
}

// UploadLimits bound what a new slot may add: Quota is the owner's (its
// Count the files, its Bytes their sizes, the slots not yet expired
// included), Total the bytes of every user's together (0: no bound).
type UploadLimits struct {
	Quota Quota
	Total int64
}
