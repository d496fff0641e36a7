package muc

// PhotoHash is photoHash, for the fuzz test.
var PhotoHash = photoHash
