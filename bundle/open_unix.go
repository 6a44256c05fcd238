//go:build unix

package bundle

import "syscall"

// openNonBlock makes opening a file that turned into a named pipe after it
// was checked return at once instead of waiting for a writer.
const openNonBlock = syscall.O_NONBLOCK
