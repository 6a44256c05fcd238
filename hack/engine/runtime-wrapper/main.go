// Command runtime-wrapper is an OCI runtime that edits the container's spec
// and then execs the real runc with the same arguments. It is test
// infrastructure for machines whose capability bounding set lacks
// CAP_SYS_RESOURCE (a Firecracker VM here): a privileged container asks for
// every capability and runc fails with "unable to apply caps: operation not
// permitted", and lowering oom_score_adj is refused.
//
// It has two modes:
//
//   - docker (dockerd's default runtime, see hack/engine): deletes
//     CAP_SYS_RESOURCE from every capability list of the spec.
//   - node (the runc of a kind node, installed by the node image as `runc`):
//     the same, and a negative process.oomScoreAdj (the kubelet asks for
//     -998 for pod sandboxes) is raised to 0.
//
// The mode is TMBOX_WRAPPER_MODE (docker or node) when set; otherwise node
// when the wrapper is invoked as "runc" (argv[0]'s base name), else docker.
//
// The spec is the bundle's config.json for create and run (--bundle DIR,
// default the working directory) and the process JSON for exec (--process
// FILE); it is edited in place. The real runtime is TMBOX_WRAPPED_RUNTIME
// when set, else "<own path>.real" when that file exists, else the first
// runc on PATH that is not this program.
//
// Nothing is written to stdout (runc's stdout is part of its protocol with
// the shim); errors go to stderr. TMBOX_WRAPPER_LOG=FILE appends one line per
// edit to FILE.
//
// Build it with `go build -o OUT ./hack/engine/runtime-wrapper` (only the
// standard library; CGO_ENABLED=0 gives a static binary for node images).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const (
	progName = "tmbox-runtime-wrapper"
	// dropCap is the capability this VM's bounding set lacks.
	dropCap = "CAP_SYS_RESOURCE"
)

// mode says which edits are made.
type mode string

const (
	modeDocker mode = "docker"
	modeNode   mode = "node"
)

func main() {
	if err := run(os.Args, os.Getenv); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", progName, err)
		os.Exit(1)
	}
}

func run(args []string, getenv func(string) string) error {
	m, err := pickMode(args[0], getenv("TMBOX_WRAPPER_MODE"))
	if err != nil {
		return err
	}
	real, err := findRuntime(getenv("TMBOX_WRAPPED_RUNTIME"), getenv("PATH"))
	if err != nil {
		return err
	}
	if file, isProcess := specFile(args[1:]); file != "" {
		changed, err := editFile(file, isProcess, m)
		if err != nil {
			return err
		}
		if logf := getenv("TMBOX_WRAPPER_LOG"); logf != "" && len(changed) > 0 {
			appendLog(logf, fmt.Sprintf("%s %s mode=%s %s: %s\n", time.Now().UTC().Format(time.RFC3339), args[1:], m, file, strings.Join(changed, ", ")))
		}
	}
	argv := append([]string{real}, args[1:]...)
	if err := syscall.Exec(real, argv, os.Environ()); err != nil {
		return fmt.Errorf("exec %s: %w", real, err)
	}
	return nil
}

func pickMode(argv0, env string) (mode, error) {
	switch mode(env) {
	case modeDocker, modeNode:
		return mode(env), nil
	case "":
	default:
		return "", fmt.Errorf("TMBOX_WRAPPER_MODE=%q: want %q or %q", env, modeDocker, modeNode)
	}
	if filepath.Base(argv0) == "runc" {
		return modeNode, nil
	}
	return modeDocker, nil
}

// findRuntime returns the real runc: env if set, else "<self>.real", else
// the first runc on path that is not this executable.
func findRuntime(env, path string) (string, error) {
	if env != "" {
		return env, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find own executable: %w", err)
	}
	if isExecutable(self + ".real") {
		return self + ".real", nil
	}
	selfInfo, err := os.Stat(self)
	if err != nil {
		return "", err
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		cand := filepath.Join(dir, "runc")
		if !isExecutable(cand) {
			continue
		}
		if info, err := os.Stat(cand); err == nil && os.SameFile(info, selfInfo) {
			continue
		}
		return cand, nil
	}
	return "", errors.New("no runc found: set TMBOX_WRAPPED_RUNTIME, install runc on PATH, or put it beside this program as " + filepath.Base(self) + ".real")
}

func isExecutable(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0
}

// Global runc flags that take a value (urfave/cli: -flag or --flag, value
// as the next argument or after '=').
var globalValueFlags = map[string]bool{"root": true, "log": true, "log-format": true, "criu": true, "rootless": true}

// specFile finds the spec runc will read: the bundle's config.json for
// create and run, the --process file for exec (isProcess). It returns ""
// for every other command, and for exec without --process.
func specFile(args []string) (file string, isProcess bool) {
	cmd, rest := "", []string(nil)
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") {
			cmd, rest = a, args[i+1:]
			break
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if globalValueFlags[name] && !hasValue {
			i++ // skip the value
		}
	}
	switch cmd {
	case "create", "run":
		bundle := flagValue(rest, "bundle", "b")
		if bundle == "" {
			bundle = "."
		}
		return filepath.Join(bundle, "config.json"), false
	case "exec":
		if p := flagValue(rest, "process", "p"); p != "" {
			return p, true
		}
	}
	return "", false
}

// Flags of create, run and exec that take a value, so that a value is not
// mistaken for the container ID (the first positional argument, after which
// scanning stops: exec's command line follows it).
var cmdValueFlags = map[string]bool{
	"bundle": true, "b": true, "console-socket": true, "pid-file": true, "preserve-fds": true,
	"cwd": true, "env": true, "e": true, "user": true, "u": true, "additional-gids": true, "g": true,
	"process": true, "p": true, "apparmor": true, "process-label": true, "cap": true, "c": true,
	"cgroup": true,
}

// flagValue returns the value of the flag long (or its short alias) among
// args, up to the first positional argument.
func flagValue(args []string, long, short string) string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || !strings.HasPrefix(a, "-") {
			return ""
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name == long || name == short {
			if hasValue {
				return value
			}
			if i+1 < len(args) {
				return args[i+1]
			}
			return ""
		}
		if cmdValueFlags[name] && !hasValue {
			i++
		}
	}
	return ""
}

// editFile applies the mode's edits to the spec file in place and returns
// what it changed. A missing file is left to runc to report.
func editFile(file string, isProcess bool, m mode) ([]string, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out, changed, err := editSpec(data, isProcess, m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(changed) == 0 {
		return nil, nil
	}
	info, err := os.Stat(file)
	if err != nil {
		return nil, err
	}
	tmp := file + ".tmbox-tmp"
	if err := os.WriteFile(tmp, out, info.Mode().Perm()); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, file); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	return changed, nil
}

var capLists = []string{"bounding", "effective", "inheritable", "permitted", "ambient"}

// editSpec edits an OCI runtime spec (isProcess=false: the process is under
// "process") or a process spec (isProcess=true). Fields it does not touch
// are kept as they are (numbers included).
func editSpec(data []byte, isProcess bool, m mode) ([]byte, []string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, nil, fmt.Errorf("parse spec: %w", err)
	}
	proc := doc
	if !isProcess {
		p, ok := doc["process"].(map[string]any)
		if !ok {
			return data, nil, nil
		}
		proc = p
	}
	var changed []string
	if caps, ok := proc["capabilities"].(map[string]any); ok {
		for _, list := range capLists {
			l, ok := caps[list].([]any)
			if !ok {
				continue
			}
			kept := l[:0:0]
			for _, c := range l {
				if c != dropCap {
					kept = append(kept, c)
				}
			}
			if len(kept) != len(l) {
				caps[list] = kept
				changed = append(changed, "removed "+dropCap+" from "+list)
			}
		}
	}
	if m == modeNode {
		if n, ok := proc["oomScoreAdj"].(json.Number); ok {
			if v, err := n.Int64(); err == nil && v < 0 {
				proc["oomScoreAdj"] = json.Number("0")
				changed = append(changed, fmt.Sprintf("oomScoreAdj %d -> 0", v))
			}
		}
	}
	if len(changed) == 0 {
		return data, nil, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, nil, err
	}
	return buf.Bytes(), changed, nil
}

func appendLog(file, line string) {
	f, err := os.OpenFile(file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: log: %v\n", progName, err)
		return
	}
	defer f.Close()
	f.WriteString(line)
}
