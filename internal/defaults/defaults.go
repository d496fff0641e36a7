// Package defaults fills the zero values of options structs: a module's
// Options documents "0 is DefaultX" for each bound, and its constructor
// calls Positive for each.
package defaults

// Number is what Positive fills: counts, byte sizes, durations.
type Number interface {
	~int | ~int32 | ~int64 | ~float64
}

// Positive sets *v to def when *v is zero or negative, which options
// read as "not set".
func Positive[T Number](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}
