package catalog

import (
	"context"
	"fmt"
	"io"
	"unicode/utf8"
)

// MaxCatalogSize is the largest catalog Load and Parse accept, in bytes.
// The embedded catalog is well under 1 MiB.
const MaxCatalogSize int64 = 8 << 20

// maxQuoted is how many bytes of a user's value QuoteShort keeps.
const maxQuoted = 64

// ReadLimited reads the regular file at path, refusing (without reading
// all of it) a file larger than limit bytes: it reads through an
// io.LimitReader of limit+1 bytes. A named pipe, device, socket or
// directory is refused without being read, so no input can make tmbox
// wait. Errors name the file, and the limit when it is exceeded.
func ReadLimited(path string, limit int64) ([]byte, error) {
	f, err := openRegular(context.Background(), path)
	if err != nil {
		return nil, err // names path
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than the limit of %s", path, SizeString(limit))
	}
	return data, nil
}

// SizeString renders a byte count for messages: "8 MiB", "64 KiB" when it
// is a whole number of those, "1500 bytes" otherwise.
func SizeString(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// QuoteShort quotes a user's value for an error message like %q, keeping
// only its first 64 bytes (cut at a rune boundary) followed by "…" and its
// length when it is longer, so a huge value is not echoed whole.
func QuoteShort(s string) string {
	if len(s) <= maxQuoted {
		return fmt.Sprintf("%q", s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q… (%d bytes)", s[:cut], len(s))
}

// maxPathShown is the longest path a message shows whole.
const maxPathShown = 1024

// ShortPath is a path for an error message: the path itself, or, when it
// is longer than any real one, a quoted short prefix (QuoteShort).
func ShortPath(p string) string {
	if len(p) <= maxPathShown {
		return p
	}
	return QuoteShort(p)
}
