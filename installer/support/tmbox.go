package support

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// tmboxVersion writes tmbox/version.json.
func (r *run) tmboxVersion(_ context.Context, s *sink) error {
	v := r.o.Version
	if v == nil {
		v = map[string]string{"version": "unknown"}
	}
	return s.json("tmbox/version.json", v)
}

// tmboxLogs writes the newest of tmbox's log files (StateDir/logs: the
// wizard's), each capped to its last MaxLogBytes.
func (r *run) tmboxLogs(_ context.Context, s *sink) error {
	if r.o.StateDir == "" {
		return skip("no state directory given")
	}
	dir := filepath.Join(r.o.StateDir, "logs")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		s.note("no log files: %s does not exist (tmbox writes one per wizard run)", dir)
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", dir, err)
	}
	type logFile struct {
		name string
		info fs.FileInfo
	}
	var files []logFile
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		files = append(files, logFile{e.Name(), info})
	}
	if len(files) == 0 {
		s.note("no log files in %s (tmbox writes one per wizard run)", dir)
		return nil
	}
	sort.Slice(files, func(i, j int) bool {
		if !files[i].info.ModTime().Equal(files[j].info.ModTime()) {
			return files[i].info.ModTime().After(files[j].info.ModTime())
		}
		return files[i].name > files[j].name
	})
	if len(files) > r.o.MaxLogFiles {
		s.note("the newest %d of %d log files in %s", r.o.MaxLogFiles, len(files), dir)
		files = files[:r.o.MaxLogFiles]
	}
	for _, f := range files {
		data, truncated, err := readTail(filepath.Join(dir, f.name), r.o.MaxLogBytes)
		if err != nil {
			s.warn("%v", err)
			continue
		}
		if truncated {
			s.note("%s: only its last %d bytes", f.name, r.o.MaxLogBytes)
		}
		if err := s.write("tmbox/logs/"+safeName(f.name), data); err != nil {
			return err
		}
	}
	return nil
}

// readTail reads the last max bytes of a file, from a line start.
func readTail(name string, max int64) ([]byte, bool, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	if info.Size() <= max {
		data, err := io.ReadAll(io.LimitReader(f, max))
		return data, false, err
	}
	if _, err := f.Seek(info.Size()-max, io.SeekStart); err != nil {
		return nil, false, err
	}
	data, err := io.ReadAll(io.LimitReader(f, max))
	if err != nil {
		return nil, false, err
	}
	return dropPartialLine(data), true, nil
}

// dropPartialLine drops the (cut) first line of a tail.
func dropPartialLine(data []byte) []byte {
	if i := bytes.IndexByte(data, '\n'); i >= 0 && i+1 < len(data) {
		return data[i+1:]
	}
	return data
}

// stateDoc is the part of tmbox's state the bundle reads (installer.State's
// JSON names).
type stateDoc struct {
	Release   string                       `json:"release"`
	Platform  json.RawMessage              `json:"platform"`
	Journal   json.RawMessage              `json:"journal"`
	Inventory map[string][]json.RawMessage `json:"inventory"`
}

// tmboxState writes tmbox/state.json (the state as stored),
// tmbox/settings.json (the platform settings the release runs with),
// tmbox/journal.json and tmbox/lock.yaml (the Lease of a writing tmbox),
// and remembers the release and the inventory's namespaces.
func (r *run) tmboxState(ctx context.Context, s *sink) error {
	ref := r.o.Cluster.State
	if ref.Name == "" {
		return skip("no state ConfigMap given")
	}
	if err := r.tmboxLock(ctx, s); err != nil {
		return err
	}
	cm, err := r.o.Cluster.Client.CoreV1().ConfigMaps(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		s.note("no tmbox state: ConfigMap %s/%s does not exist (tmbox never installed on this cluster, or it was uninstalled)", ref.Namespace, ref.Name)
		return nil
	}
	if err != nil {
		return fmt.Errorf("read ConfigMap %s/%s: %w", ref.Namespace, ref.Name, err)
	}
	raw, ok := cm.Data[ref.Key]
	if !ok {
		return fmt.Errorf("ConfigMap %s/%s has no key %s", ref.Namespace, ref.Name, ref.Key)
	}
	if err := s.write("tmbox/state.json", []byte(raw)); err != nil {
		return err
	}
	var st stateDoc
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		s.warn("the state is not valid JSON: %v", err)
		return nil
	}
	r.release = st.Release
	for _, objs := range st.Inventory {
		for _, o := range objs {
			var k struct {
				Namespace string `json:"namespace"`
			}
			if json.Unmarshal(o, &k) == nil && k.Namespace != "" {
				if _, ok := r.namespaces[k.Namespace]; !ok {
					r.namespaces[k.Namespace] = "in tmbox's inventory"
				}
			}
		}
	}
	platform := json.RawMessage("{}")
	if len(st.Platform) > 0 && string(st.Platform) != "null" {
		platform = st.Platform
	}
	if err := s.write("tmbox/settings.json", indentJSON(platform)); err != nil {
		return err
	}
	journal := json.RawMessage("[]")
	if len(st.Journal) > 0 && string(st.Journal) != "null" {
		journal = st.Journal
	}
	return s.write("tmbox/journal.json", indentJSON(journal))
}

// tmboxLock writes the lock's Lease, when there is one.
func (r *run) tmboxLock(ctx context.Context, s *sink) error {
	name := r.o.Cluster.LockName
	if name == "" {
		return nil
	}
	ns := r.o.Cluster.State.Namespace
	l, err := r.o.Cluster.Client.CoordinationV1().Leases(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		s.note("no lock: Lease %s/%s does not exist (no tmbox is changing the cluster)", ns, name)
		return nil
	case err != nil:
		s.warn("read Lease %s/%s: %v", ns, name, err)
		return nil
	}
	l.ManagedFields = nil
	l.APIVersion, l.Kind = "coordination.k8s.io/v1", "Lease"
	return s.yaml("tmbox/lock.yaml", l)
}

// indentJSON indents raw JSON (as is if it cannot).
func indentJSON(raw []byte) []byte {
	var b bytes.Buffer
	if json.Indent(&b, raw, "", "  ") != nil {
		return raw
	}
	b.WriteByte('\n')
	return b.Bytes()
}

// tmboxPreflight runs preflight now and writes tmbox/preflight.json.
func (r *run) tmboxPreflight(ctx context.Context, s *sink) error {
	if r.o.Preflight == nil {
		return skip("not requested")
	}
	rep, err := r.o.Preflight(ctx, r.release)
	if err != nil {
		return err
	}
	return s.json("tmbox/preflight.json", rep)
}
