// Package ctxio makes reads honour a context: a long read (a bundle's
// verification, a mirror's asset) stops once the context is done.
package ctxio

import (
	"context"
	"io"
)

// Reader fails reads once ctx is done.
type Reader struct {
	// Ctx is the context every read checks first.
	Ctx context.Context
	// R is read from.
	R io.Reader
}

// Read implements io.Reader.
func (c Reader) Read(p []byte) (int, error) {
	if err := c.Ctx.Err(); err != nil {
		return 0, err
	}
	return c.R.Read(p)
}
