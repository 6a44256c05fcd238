//go:build unix

package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The doc test (issue 18): the code blocks of README.md and docs/*.md
// that are marked runnable run, so the docs cannot drift from the
// product. docs/development.md ("The doc test") describes the markers; in
// short, an HTML comment on the line before a fenced block:
//
//	<!-- runnable -->          every line is a tmbox command, run in order
//	                           against a test cluster of the block's own;
//	<!-- runnable offline -->  the same without a cluster;
//	<!-- runnable output -->   a console block "$ tmbox …" then what it
//	                           prints (stdout, then stderr): run offline,
//	                           the block must be that output;
//	<!-- golden PATH -->       the block is the file PATH (a test's golden,
//	                           e.g. a wizard screen), relative to the root.
//
// Each command must exit 0 (output blocks show errors too); the stdout of
// a runnable block's commands, with volatile parts normalised (times,
// durations, hashes, ports, temporary paths), must equal
// testdata/docs/<file>-<n>.golden. go test -run Docs -update rewrites
// those goldens and the output and golden blocks of the docs themselves.

// docMarker is the comment before a marked block.
var docMarker = regexp.MustCompile(`^<!-- (runnable(?: offline| output)?|golden (\S+)) -->$`)

// docBlock is one marked block of a doc.
type docBlock struct {
	file  string // relative to the repository's root
	line  int    // of the opening fence
	index int    // 1-based, among the file's marked blocks
	mode  string // "runnable", "runnable offline", "runnable output", "golden"
	arg   string // golden's path
	// start and end are the content's byte offsets in the file.
	start, end int
	content    string
}

func (b docBlock) String() string { return fmt.Sprintf("%s:%d", b.file, b.line) }

// repoRoot is the repository's root, from cmd/tmbox.
const repoRoot = "../.."

// docFiles lists README.md and docs/*.md.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := []string{"README.md"}
	for _, f := range files {
		out = append(out, filepath.ToSlash(strings.TrimPrefix(f, repoRoot+"/")))
	}
	sort.Strings(out[1:])
	return out
}

// parseDocBlocks finds the marked blocks of a doc: a marker line right
// before a fenced block.
func parseDocBlocks(file, text string) ([]docBlock, error) {
	lines := strings.SplitAfter(text, "\n")
	offsets := make([]int, len(lines)+1) // offsets[i]: where line i starts
	for i, l := range lines {
		offsets[i+1] = offsets[i] + len(l)
	}
	var blocks []docBlock
	var marker []string
	for i := 0; i < len(lines); i++ {
		l := strings.TrimRight(lines[i], "\n")
		if m := docMarker.FindStringSubmatch(l); m != nil {
			marker = m
			continue
		}
		if !strings.HasPrefix(l, "```") {
			marker = nil
			continue
		}
		j := i + 1
		for ; j < len(lines) && strings.TrimRight(lines[j], "\n") != "```"; j++ {
		}
		if j == len(lines) {
			return nil, fmt.Errorf("%s:%d: a code block that does not end", file, i+1)
		}
		if marker != nil {
			b := docBlock{file: file, line: i + 1, index: len(blocks) + 1, mode: marker[1], start: offsets[i+1], end: offsets[j]}
			b.content = text[b.start:b.end]
			if marker[2] != "" {
				b.mode, b.arg = "golden", marker[2]
			}
			blocks = append(blocks, b)
		}
		i, marker = j, nil
	}
	return blocks, nil
}

// docCommand is one command of a runnable block.
type docCommand struct {
	text string   // as the doc shows it
	env  []string // NAME=value prefixes
	args []string // after "tmbox"
}

// parseDocCommands reads a runnable block: one tmbox command per line,
// optionally after NAME=value assignments and before a # comment; no
// pipes, redirections or variables (a block that needs them is not
// runnable).
func parseDocCommands(b docBlock) ([]docCommand, error) {
	var out []docCommand
	for n, line := range strings.Split(b.content, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		words, err := shellWords(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", b.file, b.line+1+n, err)
		}
		c := docCommand{}
		for len(words) > 0 && regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`).MatchString(words[0]) {
			c.env, words = append(c.env, words[0]), words[1:]
		}
		if len(words) == 0 || words[0] != "tmbox" {
			return nil, fmt.Errorf("%s:%d: a runnable block runs tmbox commands only, not %q", b.file, b.line+1+n, line)
		}
		c.args = words[1:]
		c.text = strings.Join(append(c.env, words...), " ")
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s:%d: a runnable block without a command", b.file, b.line)
	}
	return out, nil
}

// shellWords splits a line as sh would, for the subset runnable blocks
// may use: words, '…' and "…" quoting, a trailing # comment.
func shellWords(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words, inWord = append(words, cur.String()), false
				cur.Reset()
			}
		case r == '#' && !inWord:
			return words, nil
		case strings.ContainsRune("|&;<>$`\\(){}*?", r):
			return nil, fmt.Errorf("%q: shell syntax (%c) is not runnable", line, r)
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("%q: an unclosed quote", line)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// docEnv is where a block's commands run.
type docEnv struct {
	dir, home, mirror, kubeconfig string
}

// newDocEnv makes a block's sandbox: its own home, state and caches, the
// upstream manifests as the mirror (TMBOX_MIRROR: a doc's command that
// would download reads them instead; nothing leaves this machine).
func newDocEnv(t *testing.T, kubeconfig string) docEnv {
	t.Helper()
	dir := t.TempDir()
	e := docEnv{dir: filepath.Join(dir, "work"), home: filepath.Join(dir, "home"), mirror: upstreamDir(t), kubeconfig: kubeconfig}
	for _, d := range []string{e.dir, e.home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if e.kubeconfig == "" {
		e.kubeconfig = filepath.Join(e.home, "no-kubeconfig")
	}
	return e
}

// substitute maps a doc's example paths to the sandbox's.
func (e docEnv) substitute(arg string) string {
	for _, p := range []string{"/srv/tmbox-mirror", "/srv/tmbox", "../shared/upstream"} {
		if arg == p {
			return e.mirror
		}
		if rest, ok := strings.CutPrefix(arg, p+"/"); ok {
			return filepath.Join(e.mirror, rest)
		}
		if k, v, ok := strings.Cut(arg, "="); ok && v == p {
			return k + "=" + e.mirror
		}
	}
	return arg
}

// run runs one command with tmbox as this test binary (TestMain).
func (e docEnv) run(t *testing.T, c docCommand) (stdout, stderr string, code int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := make([]string, len(c.args))
	for i, a := range c.args {
		args[i] = e.substitute(a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Dir = e.dir
	cmd.Env = []string{
		corpusMainEnv + "=1", "HOME=" + e.home, "PATH=" + os.Getenv("PATH"), "KUBECONFIG=" + e.kubeconfig,
		"XDG_CACHE_HOME=" + filepath.Join(e.home, ".cache"), "XDG_STATE_HOME=" + filepath.Join(e.home, ".local", "state"),
		"TMBOX_MIRROR=" + e.mirror, "TMBOX_TIMEOUT=2m", "NO_COLOR=1",
	}
	for _, kv := range c.env {
		k, v, _ := strings.Cut(kv, "=")
		cmd.Env = append(cmd.Env, k+"="+e.substitute(v))
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	err = cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	default:
		t.Fatalf("%s: %v", c.text, err)
	}
	return out.String(), errOut.String(), code
}

// docNormalisers replace what changes from run to run, in order.
func docNormalisers() []struct {
	re   *regexp.Regexp
	with string
} {
	return []struct {
		re   *regexp.Regexp
		with string
	}{
		// What a run waited for, and how long, varies with timing.
		{regexp.MustCompile(`(?m)^\{[^\n]*"type":"(waiting|progress)"[^\n]*\}\n`), ""},
		{regexp.MustCompile(`"(durationNanos|durationNs)":\d+`), `"$1":0`},
		{regexp.MustCompile(`(?m)^\s*(\[[a-z-]+\] )?waiting: .*\n`), ""},
		{regexp.MustCompile(`sha256:[0-9a-f]{64}`), "sha256:HASH"},
		{regexp.MustCompile(`\b[0-9a-f]{12,}\b`), "HASH"},
		{regexp.MustCompile(`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})`), "TIME"},
		{regexp.MustCompile(`\b\d{8}[T-]\d{6}Z?\b`), "TIME"},
		{regexp.MustCompile(`\b\d{2}:\d{2}:\d{2}\b`), "TIME"},
		{regexp.MustCompile(`\b\d+(\.\d+)?(ns|µs|ms|s)\b|\b\d+m\d+(\.\d+)?s\b|\b\d+h\d+m\d+s\b`), "DURATION"},
		{regexp.MustCompile(`\b127\.0\.0\.\d+\b`), "127.0.0.X"},
		{regexp.MustCompile(`\b127\.0\.0\.X:\d+\b`), "127.0.0.X:PORT"},
		{regexp.MustCompile(`\bnode port \d+`), "node port PORT"},
		{regexp.MustCompile(`\b3\d{4} \(https?\)`), "PORT (http)"},
		{regexp.MustCompile(`go1\.\d+(\.\d+)?`), "GOVERSION"},
		{regexp.MustCompile(`(?m)[ \t]+$`), ""},
	}
}

// docShape is what the comparison sees of normalised output: runs of
// blanks are one (a column's width follows the values normalised away).
func docShape(s string) string {
	return regexp.MustCompile(`[ \t]{2,}`).ReplaceAllString(s, "  ")
}

// normaliseDoc replaces the volatile parts of a command's output, and the
// sandbox's paths with the docs' names for them.
func normaliseDoc(s string, e docEnv) string {
	s = strings.ReplaceAll(s, e.mirror, "/srv/tmbox")
	s = strings.ReplaceAll(s, e.kubeconfig, "$KUBECONFIG")
	s = strings.ReplaceAll(s, e.dir, ".")
	s = strings.ReplaceAll(s, e.home, "~")
	for _, n := range docNormalisers() {
		s = n.re.ReplaceAllString(s, n.with)
	}
	return s
}

// updateGoldens reports whether -update was given (teatest's golden
// package registers the flag).
func updateGoldens() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// docBlocks reads every marked block of the docs.
func docBlocks(t *testing.T) []docBlock {
	t.Helper()
	var all []docBlock
	for _, f := range docFiles(t) {
		data, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			t.Fatal(err)
		}
		blocks, err := parseDocBlocks(f, string(data))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, blocks...)
	}
	return all
}

// TestDocsMarked: the docs' main commands are covered: each of these
// files has marked blocks, and every runnable block parses.
func TestDocsMarked(t *testing.T) {
	count := map[string]int{}
	for _, b := range docBlocks(t) {
		count[b.file]++
		if strings.HasPrefix(b.mode, "runnable") && b.mode != "runnable output" {
			if _, err := parseDocCommands(b); err != nil {
				t.Error(err)
			}
		}
	}
	for _, f := range []string{"README.md", "docs/install.md", "docs/releases.md", "docs/automation.md", "docs/cli.md", "docs/tui.md"} {
		if count[f] == 0 {
			t.Errorf("%s has no runnable or golden block", f)
		}
	}
	t.Logf("marked blocks per file: %v", count)
}

// TestDocsOffline runs the blocks that need no cluster and checks the
// golden blocks.
func TestDocsOffline(t *testing.T) {
	var edits []docEdit
	for _, b := range docBlocks(t) {
		switch b.mode {
		case "runnable offline":
			t.Run(b.String(), func(t *testing.T) { runDocBlock(t, b, newDocEnv(t, "")) })
		case "runnable output":
			t.Run(b.String(), func(t *testing.T) {
				if e := checkOutputBlock(t, b); e != nil {
					edits = append(edits, *e)
				}
			})
		case "golden":
			t.Run(b.String(), func(t *testing.T) {
				want, err := os.ReadFile(filepath.Join(repoRoot, b.arg))
				if err != nil {
					t.Fatal(err)
				}
				if got := b.content; got != string(want) {
					if updateGoldens() {
						edits = append(edits, docEdit{b, string(want)})
						return
					}
					t.Errorf("the block is not %s (go test -run Docs -update rewrites it):\n%s\nwant\n%s", b.arg, got, want)
				}
			})
		}
	}
	applyDocEdits(t, edits)
}

// TestIntegrationDocs runs the blocks that need a cluster, each against a
// test cluster of its own.
func TestIntegrationDocs(t *testing.T) {
	shared := suite.Cluster(t)
	for _, b := range docBlocks(t) {
		if b.mode != "runnable" {
			continue
		}
		t.Run(b.String(), func(t *testing.T) {
			c := startOwnCluster(t, shared)
			runDocBlock(t, b, newDocEnv(t, c.Kubeconfig))
		})
	}
}

// runDocBlock runs a runnable block's commands in order and compares
// their normalised stdout with the block's golden.
func runDocBlock(t *testing.T, b docBlock, e docEnv) {
	t.Helper()
	cmds, err := parseDocCommands(b)
	if err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	for _, c := range cmds {
		start := time.Now()
		stdout, stderr, code := e.run(t, c)
		t.Logf("%s: exit %d in %s", c.text, code, time.Since(start).Round(time.Millisecond))
		if code != 0 {
			t.Fatalf("%s: %s exited %d\nstdout:\n%s\nstderr:\n%s", b, c.text, code, stdout, stderr)
		}
		fmt.Fprintf(&got, "$ %s\n%s", c.text, normaliseDoc(stdout, e))
	}
	golden := filepath.Join("testdata", "docs", strings.ReplaceAll(b.file, "/", "_")+fmt.Sprintf("-%d.golden", b.index))
	if updateGoldens() {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(got.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test -run Docs -update writes it)", err)
	}
	if docShape(got.String()) != docShape(string(want)) {
		t.Errorf("%s: the output's shape changed (go test -run Docs -update rewrites %s):\n%s", b, golden, lineDiff(docShape(string(want)), docShape(got.String())))
	}
}

// checkOutputBlock runs an output block's command offline and compares
// what it prints with the rest of the block; with -update it returns the
// edit that makes the block the output.
func checkOutputBlock(t *testing.T, b docBlock) *docEdit {
	t.Helper()
	first, shown, _ := strings.Cut(b.content, "\n")
	cmdline, ok := strings.CutPrefix(first, "$ ")
	if !ok {
		t.Fatalf("%s: an output block starts with \"$ tmbox …\"", b)
	}
	cmds, err := parseDocCommands(docBlock{file: b.file, line: b.line, content: cmdline})
	if err != nil || len(cmds) != 1 {
		t.Fatalf("%s: %v", b, err)
	}
	e := newDocEnv(t, "")
	stdout, stderr, code := e.run(t, cmds[0])
	got := normaliseDoc(stdout+stderr, e)
	t.Logf("%s: exit %d", cmdline, code)
	if docShape(got) == docShape(shown) {
		return nil
	}
	if updateGoldens() {
		return &docEdit{b, first + "\n" + got}
	}
	t.Errorf("%s: the block does not show what %s prints (go test -run Docs -update rewrites it):\n%s", b, cmdline, lineDiff(docShape(shown), docShape(got)))
	return nil
}

// docEdit replaces a block's content.
type docEdit struct {
	b       docBlock
	content string
}

// applyDocEdits rewrites blocks of the docs (-update), last first in each
// file so that offsets stay right.
func applyDocEdits(t *testing.T, edits []docEdit) {
	t.Helper()
	sort.Slice(edits, func(i, j int) bool {
		if edits[i].b.file != edits[j].b.file {
			return edits[i].b.file < edits[j].b.file
		}
		return edits[i].b.start > edits[j].b.start
	})
	for _, e := range edits {
		p := filepath.Join(repoRoot, e.b.file)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if string(data[e.b.start:e.b.end]) != e.b.content {
			t.Fatalf("%s changed while the test ran", e.b)
		}
		out := string(data[:e.b.start]) + e.content + string(data[e.b.end:])
		if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s", e.b)
	}
}

// lineDiff shows the lines of want and got that differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want %q\n  got  %q\n", i+1, wl, gl)
		}
	}
	return b.String()
}

// TestDocParsing pins the parser: markers, commands, the shell subset.
func TestDocParsing(t *testing.T) {
	doc := "text\n<!-- runnable offline -->\n```sh\ntmbox versions   # the releases\nTMBOX_RELEASE=1.23 tmbox plan --from 1.21 --to '1.23'\n```\n\n```sh\ntmbox not-marked\n```\n<!-- golden tui/testdata/x.golden -->\n```\nscreen\n```\n"
	blocks, err := parseDocBlocks("d.md", doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 2 || blocks[0].mode != "runnable offline" || blocks[0].line != 3 || blocks[1].mode != "golden" || blocks[1].arg != "tui/testdata/x.golden" || blocks[1].content != "screen\n" || blocks[1].index != 2 {
		t.Fatalf("blocks %+v", blocks)
	}
	cmds, err := parseDocCommands(blocks[0])
	if err != nil || len(cmds) != 2 || strings.Join(cmds[0].args, " ") != "versions" || cmds[1].env[0] != "TMBOX_RELEASE=1.23" || cmds[1].args[4] != "1.23" {
		t.Fatalf("commands %+v, %v", cmds, err)
	}
	for _, bad := range []string{"kubectl get pods", "tmbox status | grep x", "tmbox install --mirror $DIR", "tmbox x 'open"} {
		if _, err := parseDocCommands(docBlock{file: "d.md", content: bad}); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
	e := docEnv{mirror: "/m", dir: "/w", home: "/h", kubeconfig: "/k"}
	if got := e.substitute("/srv/tmbox"); got != "/m" {
		t.Errorf("substitute: %q", got)
	}
	if got := docShape(normaliseDoc("done in 1.234s at 2026-03-01T12:00:00Z, https://127.0.0.1:43121,    /w/x, node port 31080", e)); got != "done in DURATION at TIME, https://127.0.0.X:PORT,  ./x, node port PORT" {
		t.Errorf("normalise: %q", got)
	}
}
