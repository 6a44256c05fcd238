//go:build !unix

package bundle

// openNonBlock is 0 where there are no named pipes to block an open.
const openNonBlock = 0
