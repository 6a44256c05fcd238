package testengine

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is a live process that belongs to an engine.
type Process struct {
	Pid     int
	Comm    string // /proc/PID/comm
	Cmdline string // arguments joined by spaces
	Why     string // what ties it to the engine
}

// String describes the process in one line, for error messages.
func (p Process) String() string {
	cmd := p.Cmdline
	if len(cmd) > 160 {
		cmd = cmd[:160] + "…"
	}
	return fmt.Sprintf("pid %d %s (%s): %s", p.Pid, p.Comm, p.Why, cmd)
}

// engineProgs are the programs dockerd runs for itself (not in containers).
var engineProgs = []string{"dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2", "docker-proxy", "docker-init", "runc", "tmbox-runtime-wrapper"}

func isEngineProg(comm, argv0 string) bool {
	base := filepath.Base(argv0)
	for _, p := range engineProgs {
		if comm == p || base == p || strings.HasPrefix(base, p+"-") || (len(p) > 15 && comm == p[:15]) {
			return true
		}
	}
	return false
}

// scope says which processes, mounts and cgroups are an engine's.
type scope struct {
	paths        []string // run dir, data root: engine programs naming them are the engine's
	cgroupParent string   // every process in it is one of the engine's containers
	netns        string   // engine programs in this network namespace are the engine's
}

// processes lists the live (not zombie) processes in the scope, except this
// process.
func (s scope) processes() ([]Process, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	var out []Process
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == self {
			continue
		}
		dir := "/proc/" + ent.Name()
		stat, err := os.ReadFile(dir + "/stat")
		if err != nil || procState(stat) == 'Z' {
			continue // gone, or dead and waiting to be reaped
		}
		rawCmd, _ := os.ReadFile(dir + "/cmdline")
		args := strings.Split(strings.TrimRight(string(rawCmd), "\x00"), "\x00")
		comm, _ := os.ReadFile(dir + "/comm")
		p := Process{Pid: pid, Comm: strings.TrimSpace(string(comm)), Cmdline: strings.Join(args, " ")}
		if s.cgroupParent != "" {
			if cg, err := os.ReadFile(dir + "/cgroup"); err == nil && inCgroup(cg, s.cgroupParent) {
				p.Why = "in cgroup " + s.cgroupParent
				out = append(out, p)
				continue
			}
		}
		if !isEngineProg(p.Comm, args[0]) {
			continue
		}
		for _, path := range s.paths {
			if path != "" && strings.Contains(p.Cmdline, path) {
				p.Why = "names " + path
				break
			}
		}
		if p.Why == "" && s.netns != "" {
			if ns, err := os.Readlink(dir + "/ns/net"); err == nil && ns == s.netns {
				p.Why = "engine program in " + ns
			}
		}
		if p.Why != "" {
			out = append(out, p)
		}
	}
	return out, nil
}

// procState returns the state letter of a /proc/PID/stat line.
func procState(stat []byte) byte {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return 0
	}
	return stat[i+2]
}

// procStartTime returns field 22 of /proc/PID/stat (start time in clock
// ticks), which tells a process from a later one with the same PID.
func procStartTime(pid int) (uint64, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 20 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// inCgroup reports whether a /proc/PID/cgroup file puts the process in
// parent or below it in any hierarchy.
func inCgroup(procCgroup []byte, parent string) bool {
	sc := bufio.NewScanner(bytes.NewReader(procCgroup))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) == 3 && underPath(parts[2], parent) {
			return true
		}
	}
	return false
}

// underPath reports whether p is dir or inside it.
func underPath(p, dir string) bool {
	dir = strings.TrimSuffix(dir, "/")
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// mounts returns the mount points at or under the scope's paths, deepest
// first.
func (s scope) mounts() ([]string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		for _, p := range s.paths {
			if p != "" && underPath(mp, p) && !slices.Contains(out, mp) {
				out = append(out, mp)
			}
		}
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space…).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cgroupDirs returns the directories of the scope's cgroup parent in every
// mounted cgroup hierarchy.
func (s scope) cgroupDirs() []string {
	if s.cgroupParent == "" {
		return nil
	}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		// "… mountpoint … - fstype source options"
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, pf := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(pf) < 1 || (pf[0] != "cgroup" && pf[0] != "cgroup2") {
			continue
		}
		if d := filepath.Join(unescapeMount(f[4]), s.cgroupParent); isDir(d) {
			out = append(out, d)
		}
	}
	return out
}

func isDir(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.IsDir()
}

// removeCgroups removes the cgroup parent's directories, deepest first. A
// cgroup that still has processes cannot be removed; that is reported.
func (s scope) removeCgroups() error {
	var errs []string
	for _, root := range s.cgroupDirs() {
		var dirs []string
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		slices.SortFunc(dirs, func(a, b string) int { return len(b) - len(a) })
		for _, d := range dirs {
			if err := syscall.Rmdir(d); err != nil && err != syscall.ENOENT {
				errs = append(errs, fmt.Sprintf("rmdir %s: %v", d, err))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// sweep kills every process in the scope, waits for them to go, unmounts
// what is mounted under its paths and removes its cgroups. It returns what
// it found, so that a caller that expected nothing can say so.
func (s scope) sweep(ctx context.Context) (found []Process, mounts []string, err error) {
	found, err = s.processes()
	if err != nil {
		return nil, nil, err
	}
	if len(found) > 0 {
		for _, p := range found {
			syscall.Kill(p.Pid, syscall.SIGKILL)
		}
		if left, werr := s.waitGone(ctx, 20*time.Second); werr != nil {
			return found, nil, fmt.Errorf("%w: %v", werr, left)
		}
	}
	mounts, err = s.mounts()
	if err != nil {
		return found, nil, err
	}
	var errs []string
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && err != syscall.EINVAL && err != syscall.ENOENT {
			errs = append(errs, fmt.Sprintf("unmount %s: %v", m, err))
		}
	}
	if err := s.removeCgroups(); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return found, mounts, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return found, mounts, nil
}

// waitGone polls until no process of the scope is left, or the timeout or
// ctx ends; it then returns what is left.
func (s scope) waitGone(ctx context.Context, timeout time.Duration) ([]Process, error) {
	deadline := time.Now().Add(timeout)
	for {
		left, err := s.processes()
		if err != nil {
			return nil, err
		}
		if len(left) == 0 {
			return nil, nil
		}
		if time.Now().After(deadline) {
			return left, fmt.Errorf("engine processes still running after %s", timeout)
		}
		select {
		case <-ctx.Done():
			return left, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
