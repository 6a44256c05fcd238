package support

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"time"
)

// capError is a file that would take the archive over its size cap.
type capError struct {
	name      string
	size, max int64
}

func (e *capError) Error() string {
	return fmt.Sprintf("%s (%d bytes) left out: the bundle's size cap (%d bytes) is reached", e.name, e.size, e.max)
}

// archive is the tar.gz being written; safe for concurrent use.
type archive struct {
	mu     sync.Mutex
	gz     *gzip.Writer
	tw     *tar.Writer
	now    time.Time
	max    int64
	total  int64
	files  []File
	paths  map[string]bool
	closed bool
}

func newArchive(w io.Writer, now time.Time, max int64) *archive {
	gz := gzip.NewWriter(w)
	return &archive{gz: gz, tw: tar.NewWriter(gz), now: now, max: max, paths: map[string]bool{}}
}

// add writes one regular file. metadata files (the index, the report)
// are not counted against the cap.
func (a *archive) add(name, collector string, data []byte, metadata bool) error {
	if err := checkPath(name); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return errors.New("the archive is closed")
	}
	if a.paths[name] {
		return fmt.Errorf("%s: written twice", name)
	}
	if !metadata && a.total+int64(len(data)) > a.max {
		return &capError{name: name, size: int64(len(data)), max: a.max}
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(data)), Mode: 0o644, ModTime: a.now, Format: tar.FormatPAX}
	if err := a.tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := a.tw.Write(data); err != nil {
		return err
	}
	a.paths[name] = true
	if !metadata {
		a.total += int64(len(data))
	}
	if name != IndexFile {
		a.files = append(a.files, File{Path: name, Size: int64(len(data)), Collector: collector})
	}
	return nil
}

// close finishes the stream.
func (a *archive) close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	return errors.Join(a.tw.Close(), a.gz.Close())
}

// listed returns the files written so far.
func (a *archive) listed() []File {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]File(nil), a.files...)
}

// checkPath refuses names that would escape the extraction directory.
func checkPath(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || path.Clean(name) != name || name == ".." || strings.HasPrefix(name, "../") {
		return fmt.Errorf("bad archive path %q", name)
	}
	return nil
}

// safeName makes a Kubernetes or file name usable as one path element.
func safeName(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
	if s == "" || s == "." || s == ".." {
		return "_"
	}
	return s
}

// Inspection is what Inspect read from a bundle.
type Inspection struct {
	Index Index
	// Report is redaction-report.json (nil when absent).
	Report *Report
	// Entries are the archive's files as stored, in order.
	Entries []File
	// Problems are differences between the index and the archive
	// (a listed file missing or of another size, a file not listed).
	Problems []string
}

// InspectFile reads a bundle file's index without extracting it.
func InspectFile(name string) (*Inspection, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	in, err := Inspect(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return in, nil
}

// Inspect reads a bundle's index and report from its stream, and checks
// the index against the archive's entries. Nothing is extracted.
func Inspect(r io.Reader) (*Inspection, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("not a support bundle (gzip): %w", err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)
	in := &Inspection{}
	var sawIndex bool
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("not a support bundle (tar): %w", err)
		}
		in.Entries = append(in.Entries, File{Path: hdr.Name, Size: hdr.Size})
		switch hdr.Name {
		case IndexFile:
			if err := json.NewDecoder(io.LimitReader(tr, 64<<20)).Decode(&in.Index); err != nil {
				return nil, fmt.Errorf("%s: %w", IndexFile, err)
			}
			sawIndex = true
		case ReportFile:
			var rep Report
			if err := json.NewDecoder(io.LimitReader(tr, 64<<20)).Decode(&rep); err != nil {
				return nil, fmt.Errorf("%s: %w", ReportFile, err)
			}
			in.Report = &rep
		}
	}
	if !sawIndex {
		return nil, fmt.Errorf("not a support bundle: no %s", IndexFile)
	}
	if in.Index.Format != Format {
		in.Problems = append(in.Problems, fmt.Sprintf("index format %q, this tmbox reads %q", in.Index.Format, Format))
	}
	stored := map[string]int64{}
	for _, e := range in.Entries {
		stored[e.Path] = e.Size
	}
	listed := map[string]bool{IndexFile: true}
	for _, f := range in.Index.Files {
		listed[f.Path] = true
		size, ok := stored[f.Path]
		switch {
		case !ok:
			in.Problems = append(in.Problems, f.Path+": listed, not in the archive")
		case size != f.Size:
			in.Problems = append(in.Problems, fmt.Sprintf("%s: listed with %d bytes, %d in the archive", f.Path, f.Size, size))
		}
	}
	for _, e := range in.Entries {
		if !listed[e.Path] {
			in.Problems = append(in.Problems, e.Path+": in the archive, not listed")
		}
	}
	return in, nil
}
