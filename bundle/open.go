package bundle

import (
	"fmt"
	"io/fs"
	"os"
)

// FileError says a bundle path cannot be read as a bundle file: it is
// missing or unreadable, or not a regular file (or a link to one).
// Nothing was read from it.
type FileError struct {
	// Path is the bundle path as given.
	Path string
	// Err says why: an *fs.PathError, or what the path is instead.
	Err error
}

// Error returns "bundle file <Path>: <Err>".
func (e *FileError) Error() string { return "bundle file " + e.Path + ": " + e.Err.Error() }

// Unwrap returns Err.
func (e *FileError) Unwrap() error { return e.Err }

// OpenFile opens the bundle file at path for reading (for Verify; Inspect,
// InspectCatalog and Extract open it this way themselves). Only a regular
// file, or a symbolic link to one, is opened: anything else (a directory,
// a named pipe, a device, a socket) is refused without being read, and the
// open never waits on a named pipe. Errors are *FileError.
func OpenFile(path string) (*os.File, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, &FileError{Path: path, Err: err}
	}
	if err := regularFile(fi); err != nil {
		return nil, &FileError{Path: path, Err: err}
	}
	f, err := os.OpenFile(path, os.O_RDONLY|openNonBlock, 0)
	if err != nil {
		return nil, &FileError{Path: path, Err: err}
	}
	if fi, err = f.Stat(); err == nil {
		err = regularFile(fi) // it may have been replaced since the Stat
	}
	if err != nil {
		f.Close()
		return nil, &FileError{Path: path, Err: err}
	}
	return f, nil
}

// regularFile refuses anything but a regular file, saying what it is.
func regularFile(fi fs.FileInfo) error {
	mode := fi.Mode()
	switch {
	case mode.IsRegular():
		return nil
	case mode.IsDir():
		return fmt.Errorf("is a directory, not a bundle file")
	case mode&fs.ModeNamedPipe != 0:
		return fmt.Errorf("is a named pipe: tmbox reads only regular files")
	case mode&fs.ModeDevice != 0:
		return fmt.Errorf("is a device: tmbox reads only regular files")
	case mode&fs.ModeSocket != 0:
		return fmt.Errorf("is a socket: tmbox reads only regular files")
	}
	return fmt.Errorf("is not a regular file (mode %s): tmbox reads only regular files", mode.Type())
}
