//go:build unix

package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tmbox/tmbox/bundle"
)

// The corpus suite (issue 14): tmbox, run as a separate process, fed bad
// input an attacker or a careless operator would give it. Every case
// asserts
//
//   - the exit code: exitUsage (2) when the fault is the user's input — a
//     flag or environment value, a config file, a catalog, an Istio
//     overlay, a file named by a flag that is missing or not a regular
//     file — and otherwise the documented code, exitError (1) for bad
//     data (a tampered bundle or mirror asset);
//   - that stderr names the offending thing (the case's want substrings),
//     stays short, and shows no panic;
//   - that nothing in the case's sandbox changed outside tmbox's own
//     directories (below), in particular the victim directories that
//     traversal attempts aim at;
//   - that no output file (or temporary sibling of one) is left;
//   - that the process ended within corpusDeadline.
//
// The process is this test binary: TestMain runs main() when
// TMBOX_CORPUS_MAIN=1 is set. Each case gets a sandbox of its own, which
// is all the process sees of a home:
//
//	$SB/home          HOME (KUBECONFIG points to $SB/home/absent-kubeconfig)
//	$SB/xdg/…         XDG_CONFIG_HOME, XDG_CACHE_HOME, XDG_DATA_HOME, XDG_RUNTIME_DIR
//	$SB/state         XDG_STATE_HOME
//	$SB/state/tmbox   tmbox's state dir (its default, and what --state-dir cases pass)
//	$SB/state/victim  a victim next to the state dir: --cluster-name ../victim
//	$SB/victim        a victim one level further up
//	$SB/tmp           TMPDIR
//	$SB/bin           PATH (empty: no container engine, no kind)
//	$SB/in            the case's input files
//	$SB/out           where output paths point
//
// The process runs in $SB, with nothing of the test's environment.
// tmbox may write only $SB/state/tmbox and $SB/tmp: the whole sandbox
// except those two is snapshotted (path, mode, size, mtime, sha256)
// before and after, and any difference fails the case — except the mtime
// of a directory holding one of the case's output paths, since writing
// beside an output and renaming is how tmbox avoids partial files
// (checkNoOutput checks nothing was left there). Cases that install or
// upgrade from a bundle also require $SB/state/tmbox to be empty
// afterwards: nothing of a refused bundle stays. Every case is refused
// before tmbox would connect to a cluster or the network.

// corpusMainEnv makes the test binary act as tmbox (see TestMain).
const corpusMainEnv = "TMBOX_CORPUS_MAIN"

const (
	// corpusDeadline bounds each case: every one is refused in well under
	// a second, so a case still running after this has hung.
	corpusDeadline = 10 * time.Second
	// corpusWaitDelay is how long the process's output pipes may stay
	// open after it was killed.
	corpusWaitDelay = 2 * time.Second
	// corpusStderrLimit is the most stderr any refusal may print.
	corpusStderrLimit = 16 << 10
	// shortStderr is the limit for cases feeding huge values.
	shortStderr = 4 << 10
)

// exitBadCatalog is the exit code of a refused --catalog file: like a
// config file it is the operator's input, so a usage error.
const exitBadCatalog = exitUsage

// sbToken stands for the sandbox's root in a case's args, env, want and
// outputs.
const sbToken = "$SB"

// corpusExcluded are the sandbox directories tmbox may write.
var corpusExcluded = []string{"state/tmbox", "tmp"}

// corpusCase is one bad input.
type corpusCase struct {
	// category groups cases (flags, configs, catalogs, overlays, mirrors,
	// bundles) and name says what is bad.
	category, name string
	// args are tmbox's arguments; env adds KEY=VALUE to the sandbox's.
	args, env []string
	// setup lays down the case's inputs in the sandbox.
	setup func(t *testing.T, sb *sandbox)
	// code is the exit code.
	code int
	// want are substrings stderr must contain.
	want []string
	// outputs are paths that must not exist afterwards (nor a temporary
	// sibling of one).
	outputs []string
	// maxStderr overrides corpusStderrLimit.
	maxStderr int
	// stateEmpty requires tmbox's state dir to be empty afterwards.
	stateEmpty bool
}

// sandbox is one case's home.
type sandbox struct{ root string }

func newSandbox(t *testing.T) *sandbox {
	t.Helper()
	sb := &sandbox{root: t.TempDir()}
	for _, d := range []string{"home", "xdg/config", "xdg/cache", "xdg/data", "xdg/run", "state/tmbox", "tmp", "bin", "in", "out"} {
		if err := os.MkdirAll(sb.path(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []string{"state/victim", "victim"} {
		sb.write(t, v+"/kubeconfig", []byte("apiVersion: v1\nkind: Config\n# the victim's\n"))
		sb.write(t, v+"/certs.d/ca.crt", []byte("not really a certificate\n"))
		sb.write(t, v+"/notes.txt", []byte("keep me\n"))
	}
	return sb
}

// path is rel (slash-separated) under the sandbox.
func (sb *sandbox) path(rel string) string { return filepath.Join(sb.root, filepath.FromSlash(rel)) }

// expand replaces sbToken with the sandbox's root.
func (sb *sandbox) expand(s string) string { return strings.ReplaceAll(s, sbToken, sb.root) }

func (sb *sandbox) expandAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = sb.expand(s)
	}
	return out
}

// write writes data to rel, making its directory.
func (sb *sandbox) write(t *testing.T, rel string, data []byte) {
	t.Helper()
	p := sb.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// env is the process's whole environment: nothing of the test's own.
func (sb *sandbox) env(extra []string) []string {
	env := map[string]string{
		corpusMainEnv:     "1",
		"PATH":            sb.path("bin"),
		"HOME":            sb.path("home"),
		"XDG_CONFIG_HOME": sb.path("xdg/config"),
		"XDG_CACHE_HOME":  sb.path("xdg/cache"),
		"XDG_DATA_HOME":   sb.path("xdg/data"),
		"XDG_RUNTIME_DIR": sb.path("xdg/run"),
		"XDG_STATE_HOME":  sb.path("state"),
		"TMPDIR":          sb.path("tmp"),
		"KUBECONFIG":      sb.path("home/absent-kubeconfig"),
	}
	for _, kv := range extra {
		k, v, _ := strings.Cut(sb.expand(kv), "=")
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// corpusResult is how one run ended.
type corpusResult struct {
	code           int
	stdout, stderr string
	took           time.Duration
	hung           bool
}

// runCorpus runs tmbox (this binary) in the sandbox with a deadline,
// killing its whole process group when it passes.
func runCorpus(t *testing.T, sb *sandbox, args, env []string) corpusResult {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), corpusDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Dir = sb.root
	cmd.Env = sb.env(env)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = corpusWaitDelay
	start := time.Now()
	err = cmd.Run()
	res := corpusResult{took: time.Since(start), hung: ctx.Err() != nil, stdout: stdout.String(), stderr: stderr.String()}
	if cmd.Process != nil {
		// Whatever the process left running goes with it.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		res.code = exitErr.ExitCode()
	default:
		t.Fatalf("run %v: %v", args, err)
	}
	return res
}

// fileState is what a snapshot records of one path.
type fileState struct {
	mode  fs.FileMode
	size  int64
	mtime time.Time
	// sum is a regular file's sha256, link a symbolic link's target.
	sum, link string
}

func (s fileState) String() string {
	out := fmt.Sprintf("%s %d bytes, mtime %s", s.mode, s.size, s.mtime.Format(time.RFC3339Nano))
	if s.sum != "" {
		out += ", sha256 " + s.sum[:12]
	}
	if s.link != "" {
		out += " → " + s.link
	}
	return out
}

// snapshotTree records every path under root (without following links
// or opening anything but regular files) except the excluded directories
// (slash-separated, relative to root).
func snapshotTree(t *testing.T, root string, exclude []string) map[string]fileState {
	t.Helper()
	snap := map[string]fileState{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if slices.Contains(exclude, rel) {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st := fileState{mode: info.Mode(), size: info.Size(), mtime: info.ModTime()}
		switch {
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			st.sum = hex.EncodeToString(sum[:])
		case info.Mode()&fs.ModeSymlink != 0:
			if st.link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		snap[rel] = st
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", root, err)
	}
	return snap
}

// diffTrees reports every path created, deleted or changed between two
// snapshots. The directories in outDirs (those holding a case's outputs)
// may change their mtime and size: writing beside the output and
// renaming, or removing what was written there, is how tmbox avoids
// partial output files (checkNoOutput checks nothing was left).
func diffTrees(before, after map[string]fileState, outDirs []string) []string {
	var diffs []string
	victim := func(p string) string {
		if p == "victim" || strings.HasPrefix(p, "victim/") || p == "state/victim" || strings.HasPrefix(p, "state/victim/") {
			return " (a traversal victim)"
		}
		return ""
	}
	for p, a := range after {
		b, ok := before[p]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("created $SB/%s%s: %s", p, victim(p), a))
		case a == b:
		case slices.Contains(outDirs, p) && a.mode == b.mode && a.mode.IsDir():
		default:
			diffs = append(diffs, fmt.Sprintf("changed $SB/%s%s: was %s, now %s", p, victim(p), b, a))
		}
	}
	for p, b := range before {
		if _, ok := after[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("deleted $SB/%s%s: was %s", p, victim(p), b))
		}
	}
	sort.Strings(diffs)
	return diffs
}

// checkNoOutput fails when path exists now though it did not before, or
// a temporary sibling of it (a name containing ".tmp", or starting with
// "." and naming it, or tmbox's ".tmbox-" prefix) appeared.
func checkNoOutput(t *testing.T, sb *sandbox, path string, before map[string]fileState) {
	t.Helper()
	rel, err := filepath.Rel(sb.root, path)
	if err != nil {
		t.Fatal(err)
	}
	existed := func(p string) bool {
		r, _ := filepath.Rel(sb.root, p)
		_, ok := before[filepath.ToSlash(r)]
		return ok
	}
	if _, err := os.Lstat(path); err == nil && !existed(path) {
		t.Errorf("output $SB/%s was left behind", filepath.ToSlash(rel))
	}
	dir, base := filepath.Split(path)
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		n := e.Name()
		if n == base || existed(filepath.Join(dir, n)) {
			continue
		}
		if strings.Contains(n, ".tmp") || strings.HasPrefix(n, ".tmbox-") || (strings.HasPrefix(n, ".") && strings.Contains(n, base)) {
			t.Errorf("temporary file %s was left beside output $SB/%s", n, filepath.ToSlash(rel))
		}
	}
}

// TestCorpus runs every case of corpusCases, in parallel.
func TestCorpus(t *testing.T) {
	fx := newCorpusFixtures(t)
	cases := corpusCases(t, fx)
	counts := map[string]int{}
	seen := map[string]bool{}
	for _, c := range cases {
		counts[c.category]++
		id := c.category + "/" + c.name
		if seen[id] {
			t.Fatalf("two cases are named %s", id)
		}
		seen[id] = true
	}
	t.Logf("%d cases: %v", len(cases), counts)
	start := time.Now()
	t.Run("cases", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.category+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				runCorpusCase(t, c)
			})
		}
	})
	t.Logf("all cases ran in %s", time.Since(start).Round(time.Millisecond))
}

// runCorpusCase runs one case and checks everything it promises.
func runCorpusCase(t *testing.T, c corpusCase) {
	sb := newSandbox(t)
	if c.setup != nil {
		c.setup(t, sb)
	}
	args := sb.expandAll(c.args)
	before := snapshotTree(t, sb.root, corpusExcluded)
	res := runCorpus(t, sb, args, c.env)
	after := snapshotTree(t, sb.root, corpusExcluded)

	cmdline := "tmbox " + strings.Join(c.args, " ")
	if len(c.env) > 0 {
		cmdline = strings.Join(c.env, " ") + " " + cmdline
	}
	stderr := res.stderr
	head := stderr
	if len(head) > 2048 {
		head = head[:2048] + fmt.Sprintf("… (%d bytes)", len(stderr))
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s\n  %s\n  stderr: %s", cmdline, fmt.Sprintf(format, args...), strings.ReplaceAll(head, sb.root, sbToken))
	}
	if res.hung {
		fail("hung: still running after %s; its process group was killed", corpusDeadline)
	} else if res.code != c.code {
		fail("exit code %d, want %d", res.code, c.code)
	}
	if strings.Contains(stderr, "panic:") || strings.Contains(stderr, "goroutine ") {
		fail("panicked")
	}
	for _, w := range sb.expandAll(c.want) {
		if !strings.Contains(stderr, w) {
			fail("stderr does not name %q", strings.ReplaceAll(w, sb.root, sbToken))
		}
	}
	limit := c.maxStderr
	if limit == 0 {
		limit = corpusStderrLimit
	}
	if len(stderr) > limit {
		fail("stderr has %d bytes, more than %d", len(stderr), limit)
	}
	var outDirs []string
	for _, o := range sb.expandAll(c.outputs) {
		if rel, err := filepath.Rel(sb.root, filepath.Dir(o)); err == nil {
			outDirs = append(outDirs, filepath.ToSlash(rel))
		}
	}
	for _, d := range diffTrees(before, after, outDirs) {
		fail("wrote outside its state and temp dirs: %s", d)
	}
	for _, o := range sb.expandAll(c.outputs) {
		checkNoOutput(t, sb, o, before)
	}
	if c.stateEmpty {
		if entries, _ := os.ReadDir(sb.path("state/tmbox")); len(entries) > 0 {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			fail("left %v in its state dir", names)
		}
	}
	if t.Failed() {
		t.Logf("took %s, stdout %q", res.took.Round(time.Millisecond), strings.ReplaceAll(res.stdout, sb.root, sbToken))
	} else if testing.Verbose() {
		last := strings.TrimSpace(stderr)
		if i := strings.LastIndex(last, "\n"); i >= 0 {
			last = last[i+1:]
		}
		if len(last) > 300 {
			last = last[:300] + "…"
		}
		t.Logf("exit %d in %s: %s", res.code, res.took.Round(time.Millisecond), strings.ReplaceAll(last, sb.root, sbToken))
	}
}

// corpusFixtures are the valid inputs cases tamper with, made once.
type corpusFixtures struct {
	// unsigned and signed are bundles of a synthetic release (see
	// newAirgapFixture); signed is signed with priv.
	unsigned, signed []byte
	// priv and pub are the signing key pair (PEM), otherPub an unrelated
	// public key.
	priv, pub, otherPub []byte
	// upstream is ../shared/upstream.
	upstream string
}

func newCorpusFixtures(t *testing.T) *corpusFixtures {
	t.Helper()
	fx := &corpusFixtures{upstream: upstreamDir(t)}
	dir := t.TempDir()
	for _, k := range []string{"signing", "other"} {
		if _, errOut, err := run(t, "bundle", "keygen", "--prefix", filepath.Join(dir, k)); err != nil {
			t.Fatalf("keygen: %v\n%s", err, errOut)
		}
	}
	af := newAirgapFixture(t)
	for _, b := range []struct {
		name string
		args []string
	}{{"unsigned.bundle", nil}, {"signed.bundle", []string{"--sign-key", filepath.Join(dir, "signing.key")}}} {
		args := append([]string{"--catalog", af.catalog, "bundle", "create", "--release", "1.30", "--mirror", af.mirror, "--file", filepath.Join(dir, b.name)}, b.args...)
		if _, errOut, err := run(t, args...); err != nil {
			t.Fatalf("bundle create: %v\n%s", err, errOut)
		}
	}
	read := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	fx.unsigned, fx.signed = read("unsigned.bundle"), read("signed.bundle")
	fx.priv, fx.pub, fx.otherPub = read("signing.key"), read("signing.pub"), read("other.pub")
	return fx
}

// tarEntry is one entry of a bundle being tampered with. (bundle's own
// rebuildBundle and evilTar live in its _test.go files, which this
// package cannot import; these are the few lines the corpus needs.)
type tarEntry struct {
	hdr  tar.Header
	data []byte
}

func readTar(t *testing.T, data []byte) []tarEntry {
	t.Helper()
	var out []tarEntry
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		content, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{hdr: *hdr, data: content})
	}
}

func writeTar(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := e.hdr
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatal(err)
		}
		if len(e.data) > 0 {
			if _, err := tw.Write(e.data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// entryIndex is the index of the entry named name.
func entryIndex(t *testing.T, entries []tarEntry, name string) int {
	t.Helper()
	for i, e := range entries {
		if e.hdr.Name == name {
			return i
		}
	}
	t.Fatalf("the bundle has no entry %s", name)
	return -1
}

// firstEntry is the first entry whose name starts with prefix.
func firstEntry(t *testing.T, entries []tarEntry, prefix string) string {
	t.Helper()
	for _, e := range entries {
		if strings.HasPrefix(e.hdr.Name, prefix) {
			return e.hdr.Name
		}
	}
	t.Fatalf("the bundle has no entry under %s", prefix)
	return ""
}

// editManifest decodes the manifest entry, lets edit change it and
// encodes it again (which breaks a signature over it).
func editManifest(t *testing.T, entries []tarEntry, edit func(m *bundle.Manifest)) {
	t.Helper()
	i := entryIndex(t, entries, bundle.ManifestName)
	var m bundle.Manifest
	if err := json.Unmarshal(entries[i].data, &m); err != nil {
		t.Fatal(err)
	}
	edit(&m)
	data, err := json.MarshalIndent(&m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	entries[i].data = data
}

// restamp recomputes the manifest's size and sha256 of every entry, as
// an attacker rebuilding a bundle would: its digests are consistent.
func restamp(t *testing.T, entries []tarEntry) {
	t.Helper()
	sums := map[string]tarEntry{}
	for _, e := range entries {
		sums[e.hdr.Name] = e
	}
	editManifest(t, entries, func(m *bundle.Manifest) {
		for i, f := range m.Files {
			e, ok := sums[f.Path]
			if !ok {
				continue
			}
			sum := sha256.Sum256(e.data)
			m.Files[i].Size, m.Files[i].SHA256 = int64(len(e.data)), hex.EncodeToString(sum[:])
		}
	})
}

// regEntry is a regular file entry.
func regEntry(name string, data []byte) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), Format: tar.FormatPAX}, data: data}
}

// insertAfterHead inserts e after the manifest (and the signature, when
// there is one).
func insertAfterHead(entries []tarEntry, e tarEntry) []tarEntry {
	at := 1
	if len(entries) > 1 && entries[1].hdr.Name == bundle.SignatureName {
		at = 2
	}
	return slices.Insert(slices.Clone(entries), at, e)
}

// mkfifo makes a named pipe at rel in the sandbox.
func (sb *sandbox) mkfifo(t *testing.T, rel string) {
	t.Helper()
	p := sb.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
}

// copyUpstream copies rel (a file or directory of ../shared/upstream)
// to dst in the sandbox, writable.
func (sb *sandbox) copyUpstream(t *testing.T, upstream, rel, dst string) {
	t.Helper()
	src := filepath.Join(upstream, filepath.FromSlash(rel))
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		r, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		target := dst
		if r != "." {
			target = dst + "/" + filepath.ToSlash(r)
		}
		sb.write(t, target, data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// remove removes rel from the sandbox.
func (sb *sandbox) remove(t *testing.T, rel string) {
	t.Helper()
	if err := os.RemoveAll(sb.path(rel)); err != nil {
		t.Fatal(err)
	}
}

// symlink makes rel a symbolic link to target.
func (sb *sandbox) symlink(t *testing.T, target, rel string) {
	t.Helper()
	if err := os.Symlink(target, sb.path(rel)); err != nil {
		t.Fatal(err)
	}
}

// edit rewrites the file at rel with edit's result.
func (sb *sandbox) edit(t *testing.T, rel string, edit func([]byte) []byte) {
	t.Helper()
	data, err := os.ReadFile(sb.path(rel))
	if err != nil {
		t.Fatal(err)
	}
	sb.write(t, rel, edit(data))
}
