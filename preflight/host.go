package preflight

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-version"
	"github.com/tmbox/tmbox/internal/engine"
	"golang.org/x/sys/unix"
)

// Host is what host checks read. Production uses LocalHost(); tests feed
// recorded states. Every field must be set.
type Host struct {
	// FS is the root filesystem (os.DirFS("/") in production); checks read
	// proc/..., sys/..., etc/os-release through it (paths without leading
	// slash).
	FS fs.FS
	// GOOS and GOARCH are the host's operating system and architecture
	// (runtime.GOOS and runtime.GOARCH in production).
	GOOS, GOARCH string
	// NumCPU is the number of CPUs usable by this process.
	NumCPU int
	// Getenv reads an environment variable.
	Getenv func(string) string
	// LookPath finds a program on PATH.
	LookPath func(string) (string, error)
	// Command runs a program and returns its stdout (error includes stderr
	// text).
	Command func(ctx context.Context, name string, args ...string) ([]byte, error)
	// FreeDisk returns the bytes available to unprivileged users on the
	// filesystem holding path (nearest existing parent).
	FreeDisk func(path string) (uint64, error)
	// PortFree reports nil when addr ("127.0.0.1:80") can be bound (it binds
	// and closes at once).
	PortFree func(addr string) error
	// WriteFile is used by fixes (absolute paths).
	WriteFile func(path string, data []byte, perm fs.FileMode) error
}

// LocalHost returns a Host backed by this machine: the real root
// filesystem, environment, PATH, programs, statfs(2) and sockets.
func LocalHost() *Host {
	return &Host{
		FS:        os.DirFS("/"),
		GOOS:      runtime.GOOS,
		GOARCH:    runtime.GOARCH,
		NumCPU:    runtime.NumCPU(),
		Getenv:    os.Getenv,
		LookPath:  exec.LookPath,
		Command:   runCommand,
		FreeDisk:  freeDisk,
		PortFree:  portFree,
		WriteFile: os.WriteFile,
	}
}

// maxStderr bounds how much of a program's stderr goes into an error.
const maxStderr = 4096

// runCommand runs name with args under ctx and returns its stdout; on
// failure the error carries the command line and its stderr.
func runCommand(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// A child that leaves a grandchild holding the pipes must not keep us
	// waiting after ctx ends.
	cmd.WaitDelay = 500 * time.Millisecond
	if err := cmd.Run(); err != nil {
		line := strings.TrimSpace(name + " " + strings.Join(args, " "))
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > maxStderr {
			msg = msg[:maxStderr] + "…"
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return stdout.Bytes(), fmt.Errorf("run %s: %w", line, ctxErr)
		}
		if msg == "" {
			return stdout.Bytes(), fmt.Errorf("run %s: %w", line, err)
		}
		return stdout.Bytes(), fmt.Errorf("run %s: %s: %w", line, msg, err)
	}
	return stdout.Bytes(), nil
}

// freeDisk returns the bytes available to unprivileged users on the
// filesystem holding path, walking up to the nearest existing parent.
func freeDisk(path string) (uint64, error) {
	p := filepath.Clean(path)
	for {
		var st unix.Statfs_t
		err := unix.Statfs(p, &st)
		if err == nil {
			return uint64(st.Bavail) * uint64(st.Bsize), nil //nolint:unconvert // field types differ between platforms
		}
		parent := filepath.Dir(p)
		if !errors.Is(err, unix.ENOENT) || parent == p {
			return 0, fmt.Errorf("statfs %s: %w", p, err)
		}
		p = parent
	}
}

// portFree binds addr over TCP and closes it at once.
func portFree(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("bind %s: %w", addr, err)
	}
	if err := l.Close(); err != nil {
		return fmt.Errorf("close listener on %s: %w", addr, err)
	}
	return nil
}

// HostRequirements are what the target needs from the host.
type HostRequirements struct {
	// CPUs the release needs on a kind host.
	CPUs int
	// Memory the release needs on a kind host, in bytes.
	Memory uint64
	// Disk is the bytes that must be free where the container engine keeps
	// images.
	Disk uint64
	// Kind says the target is a kind cluster on this host: engine, cgroup,
	// inotify, ports, cpu/mem/disk checks apply.
	Kind bool
	// Ports are addresses tmbox will map, e.g. "127.0.0.1:80",
	// "127.0.0.1:443" (checked only when Kind).
	Ports []string
	// AirGapped says tmbox installs from a bundle, mirror or private
	// registry: proxy settings must not capture local traffic.
	AirGapped bool
	// NoProxyHosts are hosts that must be reachable without proxy (e.g. the
	// registry host, the API server host). The proxy check always adds
	// localhost and 127.0.0.1 to them, and recommends .svc and
	// .cluster.local too.
	NoProxyHosts []string
}

// Host check names (stable API).
const (
	// CheckOSArch checks the host's OS and CPU architecture.
	CheckOSArch = "os-arch"
	// CheckCPU checks the CPU count against HostRequirements.CPUs.
	CheckCPU = "cpu"
	// CheckMemory checks MemTotal against HostRequirements.Memory.
	CheckMemory = "memory"
	// CheckDisk checks free space where the container engine keeps images.
	CheckDisk = "disk"
	// CheckContainerEngine checks that kind's container engine is installed,
	// answers and is recent enough.
	CheckContainerEngine = "container-engine"
	// CheckCgroups checks for the cgroup v2 unified hierarchy.
	CheckCgroups = "cgroup-v2"
	// CheckInotify checks the inotify limits kind recommends.
	CheckInotify = "inotify-limits"
	// CheckPorts checks that the host ports kind will map are free.
	CheckPorts = "host-ports"
	// CheckProxy checks that proxy settings leave local traffic alone.
	CheckProxy = "proxy"
)

// HostChecks returns the host checks that apply to req, in a stable order:
// os-arch, then (only when req.Kind) cpu, memory, disk, container-engine,
// cgroup-v2, inotify-limits and host-ports (when req.Ports is not empty),
// then proxy.
func HostChecks(h *Host, req HostRequirements) []Check {
	checks := []Check{
		New(CheckOSArch, CategoryHost, func(context.Context) Result { return checkOSArch(h, req) }),
	}
	if req.Kind {
		checks = append(checks,
			New(CheckCPU, CategoryHost, func(context.Context) Result { return checkCPU(h, req) }),
			New(CheckMemory, CategoryHost, func(context.Context) Result { return checkMemory(h, req) }),
			New(CheckDisk, CategoryHost, func(ctx context.Context) Result { return checkDisk(ctx, h, req) }),
			New(CheckContainerEngine, CategoryHost, func(ctx context.Context) Result { return checkContainerEngine(ctx, h) }),
			New(CheckCgroups, CategoryHost, func(context.Context) Result { return checkCgroups(h) }),
			New(CheckInotify, CategoryHost, func(context.Context) Result { return checkInotify(h) }),
		)
		if len(req.Ports) > 0 {
			checks = append(checks, New(CheckPorts, CategoryHost, func(context.Context) Result { return checkPorts(h, req) }))
		}
	}
	checks = append(checks, New(CheckProxy, CategoryHost, func(context.Context) Result { return checkProxy(h, req) }))
	return checks
}

// ---- os-arch ----

// checkOSArch decides as follows:
//   - linux/amd64 and linux/arm64 pass: tmbox's images exist for both.
//   - linux on another architecture fails for kind (its nodes would need
//     images for that architecture, which do not exist) and passes
//     otherwise (the CLI only talks to a remote cluster whose nodes run the
//     images).
//   - another OS (darwin, windows) warns for kind: kind runs its nodes in the
//     container engine's Linux VM, so the cpu/memory/disk numbers measured
//     here describe this host, not the VM the cluster gets. Without kind it
//     passes. The VM's architecture follows the host's, so an architecture
//     other than amd64/arm64 still fails for kind.
func checkOSArch(h *Host, req HostRequirements) Result {
	platform := h.GOOS + "/" + h.GOARCH
	supportedArch := h.GOARCH == "amd64" || h.GOARCH == "arm64"
	if !req.Kind {
		// Only the CLI runs here; the cluster's nodes run the images.
		return Pass("%s%s", platform, osRelease(h))
	}
	if !supportedArch {
		return Fail("use an amd64 (x86_64) or arm64 (aarch64) host for a kind cluster, or install into an existing cluster with amd64/arm64 nodes",
			"%s: tmbox's images exist only for linux/amd64 and linux/arm64", platform)
	}
	if h.GOOS != "linux" {
		return Warn(vmResourceHint(req),
			"kind on %s runs its nodes in the container engine's Linux VM; the cpu, memory and disk checks measure this host, not that VM", h.GOOS)
	}
	return Pass("%s%s", platform, osRelease(h))
}

// vmResourceHint says how to size the container engine's VM.
func vmResourceHint(req HostRequirements) string {
	cpus := max(req.CPUs, 1)
	gib := max((req.Memory+(1<<30)-1)>>30, 1)
	return fmt.Sprintf("give the VM at least %d CPUs and %d GiB of memory: Docker Desktop → Settings → Resources; colima start --cpu %d --memory %d; podman machine set --cpus %d --memory %d",
		cpus, gib, cpus, gib, cpus, gib*1024)
}

// osRelease returns " (PRETTY_NAME)" from etc/os-release, or "".
func osRelease(h *Host) string {
	data, err := fs.ReadFile(h.FS, "etc/os-release")
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "PRETTY_NAME="); ok {
			if v = strings.Trim(v, `"'`); v != "" {
				return " (" + v + ")"
			}
		}
	}
	return ""
}

// ---- cpu / memory / disk ----

// checkCPU compares NumCPU with req.CPUs: at least all pass, at least half
// warn, fewer fail.
func checkCPU(h *Host, req HostRequirements) Result {
	have, need := h.NumCPU, req.CPUs
	switch {
	case have >= need:
		return Pass("%d CPUs, the release needs %d", have, need)
	case have*2 >= need:
		return Warn(fmt.Sprintf("give this host (or the container engine's VM) at least %d CPUs", need),
			"%d CPUs, the release needs %d: it will be slow and some pods may stay Pending", have, need)
	default:
		return Fail(fmt.Sprintf("give this host (or the container engine's VM) at least %d CPUs; with fewer than %d the release cannot schedule", need, (need+1)/2),
			"%d CPUs, the release needs %d", have, need)
	}
}

// checkMemory compares MemTotal from proc/meminfo with req.Memory, with
// the same thresholds as checkCPU.
func checkMemory(h *Host, req HostRequirements) Result {
	have, err := memTotal(h.FS)
	if err != nil {
		return Warn(fmt.Sprintf("make sure this host has at least %s of memory", formatBytes(req.Memory)),
			"cannot read the host's memory: %v", err)
	}
	need := req.Memory
	remedy := fmt.Sprintf("give this host (or the container engine's VM) at least %s of memory, or close memory-hungry programs", formatBytes(need))
	switch {
	case have >= need:
		return Pass("%s memory, the release needs %s", formatBytes(have), formatBytes(need))
	case have*2 >= need:
		return Warn(remedy, "%s memory, the release needs %s: pods may be evicted or stay Pending", formatBytes(have), formatBytes(need))
	default:
		return Fail(remedy, "%s memory, the release needs %s", formatBytes(have), formatBytes(need))
	}
}

// memTotal returns MemTotal from proc/meminfo in bytes.
func memTotal(fsys fs.FS) (uint64, error) {
	data, err := fs.ReadFile(fsys, "proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("read /proc/meminfo: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			break
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse MemTotal in /proc/meminfo: %w", err)
		}
		if len(f) > 1 && f[1] != "kB" {
			return 0, fmt.Errorf("parse MemTotal in /proc/meminfo: unexpected unit %q", f[1])
		}
		return kb * 1024, nil
	}
	return 0, errors.New("read /proc/meminfo: no MemTotal line")
}

// checkDisk compares the free space where the engine keeps images with
// req.Disk, with the same thresholds as checkCPU.
func checkDisk(ctx context.Context, h *Host, req HostRequirements) Result {
	root, how := engineDataRoot(ctx, h)
	free, err := h.FreeDisk(root)
	if err != nil {
		return Warn(fmt.Sprintf("make sure %s has at least %s free: df -h %s", root, formatBytes(req.Disk), root),
			"cannot measure free space at %s (%s): %v", root, how, err)
	}
	need := req.Disk
	remedy := fmt.Sprintf("free space on the filesystem holding %s (see `df -h %s`; `docker system prune` removes unused images), or move the engine's data root to a larger disk", root, root)
	switch {
	case free >= need:
		return Pass("%s free at %s (%s), the release needs %s", formatBytes(free), root, how, formatBytes(need))
	case free*2 >= need:
		return Warn(remedy, "%s free at %s (%s), the release needs %s: image pulls may fill the disk and kubelet will evict pods", formatBytes(free), root, how, formatBytes(need))
	default:
		return Fail(remedy, "%s free at %s (%s), the release needs %s", formatBytes(free), root, how, formatBytes(need))
	}
}

// engineDataRoot returns where the container engine keeps images and how
// that was found. The engine query runs under ctx.
func engineDataRoot(ctx context.Context, h *Host) (root, how string) {
	e, _, err := detectEngine(h)
	if err != nil {
		return "/var/lib/docker", "no container engine found; Docker's default"
	}
	var args []string
	switch e.Family {
	case "docker":
		args = []string{"info", "--format", "{{.DockerRootDir}}"}
	case "podman":
		args = []string{"info", "--format", "{{.Store.GraphRoot}}"}
	default:
		return "/var/lib/containerd", e.Name + "'s default"
	}
	def := "/var/lib/docker"
	if e.Family == "podman" {
		def = "/var/lib/containers/storage"
	}
	out, err := h.Command(ctx, e.Name, args...)
	if err != nil {
		return def, e.Name + " did not answer; its default"
	}
	if r := strings.TrimSpace(string(out)); strings.HasPrefix(r, "/") {
		return r, "reported by " + e.Name
	}
	return def, e.Name + " reported no data root; its default"
}

// ---- container-engine ----

// detectEngine finds the engine kind would use (internal/engine: kind's
// rules, shared with the kind provider).
func detectEngine(h *Host) (engine.Binary, string, error) {
	return engine.Detect(h.Getenv, h.LookPath)
}

// engineMinimum is the oldest engine version kind supports, or "".
func engineMinimum(family string) string {
	switch family {
	case "docker":
		return "20.10"
	case "podman":
		return "4.0"
	}
	return ""
}

// engineVersionArgs is how to ask an engine for its version in a way that
// needs the engine itself to answer, not just its CLI.
//   - docker: the daemon's version.
//   - podman: `podman info` exercises the local store (or the remote
//     service / podman machine); `podman version --format {{.Server.Version}}`
//     fails on local podman, which has no server section.
//   - nerdctl: `nerdctl info` needs containerd; it reports containerd's
//     version, for which kind sets no minimum.
func engineVersionArgs(family string) []string {
	switch family {
	case "podman":
		return []string{"info", "--format", "{{.Version.Version}}"}
	case "nerdctl":
		return []string{"info", "--format", "{{.ServerVersion}}"}
	default:
		return []string{"version", "--format", "{{.Server.Version}}"}
	}
}

// engineStartHint says how to get e's daemon answering.
func engineStartHint(e engine.Binary, goos string) string {
	switch e.Name {
	case "docker":
		if goos != "linux" {
			return "start Docker Desktop (or `colima start`), then check with `docker version`"
		}
		return "start it: sudo systemctl start docker (or add your user to the docker group: sudo usermod -aG docker $USER, then log in again)"
	case "podman":
		if goos != "linux" {
			return "start the VM: podman machine start, then check with `podman info`"
		}
		return "run `podman info` to see what fails; rootless podman needs subuid/subgid entries (https://podman.io/docs/installation)"
	case "finch":
		return "start the VM: finch vm start"
	case "nerdctl.lima":
		return "start the VM: limactl start"
	default:
		return "start containerd: sudo systemctl start containerd, then check with `nerdctl info`"
	}
}

// checkContainerEngine finds kind's engine, asks it for its version under
// ctx, and checks kind's minimum.
func checkContainerEngine(ctx context.Context, h *Host) Result {
	e, note, err := detectEngine(h)
	if err != nil {
		return Fail("install Docker Engine (https://docs.docker.com/engine/install/) or Podman (https://podman.io/docs/installation)",
			"no container engine for kind: %v%s", err, note)
	}
	args := engineVersionArgs(e.Family)
	out, err := h.Command(ctx, e.Name, args...)
	if err != nil {
		if ctx.Err() != nil {
			return Fail(engineStartHint(e, h.GOOS)+"; or re-run with a longer --preflight-timeout",
				"%s is installed (%s) but its daemon did not answer within the preflight timeout: %v", e.Name, e.Path, ctx.Err())
		}
		return Fail(engineStartHint(e, h.GOOS),
			"%s is installed (%s) but its daemon does not answer: %s", e.Name, e.Path,
			strings.TrimPrefix(firstLine(err.Error()), "run "+e.Name+" "+strings.Join(args, " ")+": "))
	}
	raw := strings.TrimSpace(firstLine(string(out)))
	v, err := version.NewVersion(raw)
	if err != nil {
		return Warn(fmt.Sprintf("check `%s %s`", e.Name, strings.Join(args, " ")),
			"%s answers but reports version %q, which tmbox cannot parse%s", e.Name, raw, note)
	}
	if m := engineMinimum(e.Family); m != "" && v.Core().LessThan(version.Must(version.NewVersion(m))) {
		return Fail(fmt.Sprintf("upgrade %s to %s or newer (kind's minimum): %s", e.Name, m, engineInstallURL(e.Family)),
			"%s %s is older than %s, the oldest kind supports%s", e.Name, v.Original(), m, note)
	}
	if e.Family == "nerdctl" {
		return Pass("%s (containerd %s reachable)%s", e.Name, v.Original(), note)
	}
	return Pass("%s %s (daemon reachable)%s", e.Name, v.Original(), note)
}

// engineInstallURL is where to get a current engine.
func engineInstallURL(family string) string {
	if family == "podman" {
		return "https://podman.io/docs/installation"
	}
	return "https://docs.docker.com/engine/install/"
}

// firstLine returns s up to its first newline, trimmed.
func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// ---- cgroup-v2 ----

// checkCgroups passes when the unified cgroup v2 hierarchy is mounted. On
// another OS kind's nodes run in the engine's Linux VM, which provides the
// cgroups, so the check passes there.
func checkCgroups(h *Host) Result {
	if h.GOOS != "linux" {
		return Pass("not applicable on %s: the container engine's Linux VM provides cgroups", h.GOOS)
	}
	if _, err := fs.Stat(h.FS, "sys/fs/cgroup/cgroup.controllers"); err == nil {
		return Pass("cgroup v2 (unified hierarchy)")
	}
	return Warn("boot with systemd.unified_cgroup_hierarchy=1 on the kernel command line: sudo grubby --update-kernel=ALL --args=systemd.unified_cgroup_hierarchy=1 (Fedora/RHEL), or add it to GRUB_CMDLINE_LINUX in /etc/default/grub then sudo update-grub (Debian/Ubuntu); then reboot",
		"cgroup v1 (no /sys/fs/cgroup/cgroup.controllers): Kubernetes 1.35+ kubelets refuse cgroup v1 by default")
}

// ---- inotify-limits ----

// Inotify limits: kind's recommended values ("Pod errors due to too many
// open files", https://kind.sigs.k8s.io/docs/user/known-issues/) and the
// floor below which the check fails.
const (
	inotifyWatchesPath    = "proc/sys/fs/inotify/max_user_watches"
	inotifyInstancesPath  = "proc/sys/fs/inotify/max_user_instances"
	inotifyWatchesKey     = "fs.inotify.max_user_watches"
	inotifyInstancesKey   = "fs.inotify.max_user_instances"
	inotifyWatchesWant    = 524288
	inotifyInstancesWant  = 512
	inotifyWatchesFloor   = 65536
	inotifyInstancesFloor = 256
	inotifySysctlConf     = "/etc/sysctl.d/99-tmbox-inotify.conf"
)

// inotifySetting is one inotify limit as found on the host.
type inotifySetting struct {
	path string // relative to Host.FS
	key  string // sysctl name
	have uint64
	want uint64
}

// checkInotify compares the inotify limits with kind's recommendation and
// offers a fix that raises (never lowers) the low ones.
func checkInotify(h *Host) Result {
	if h.GOOS != "linux" {
		return Pass("not applicable on %s: the container engine's Linux VM sets the inotify limits", h.GOOS)
	}
	watches, werr := readUint(h.FS, inotifyWatchesPath)
	instances, ierr := readUint(h.FS, inotifyInstancesPath)
	if err := errors.Join(werr, ierr); err != nil {
		return Warn(fmt.Sprintf("check them: sysctl %s %s (kind recommends %d and %d)", inotifyWatchesKey, inotifyInstancesKey, inotifyWatchesWant, inotifyInstancesWant),
			"cannot read the inotify limits: %v", err)
	}
	found := fmt.Sprintf("max_user_watches=%d, max_user_instances=%d", watches, instances)
	var low []inotifySetting
	if watches < inotifyWatchesWant {
		low = append(low, inotifySetting{inotifyWatchesPath, inotifyWatchesKey, watches, inotifyWatchesWant})
	}
	if instances < inotifyInstancesWant {
		low = append(low, inotifySetting{inotifyInstancesPath, inotifyInstancesKey, instances, inotifyInstancesWant})
	}
	if len(low) == 0 {
		return Pass("%s (kind recommends at least %d and %d)", found, inotifyWatchesWant, inotifyInstancesWant)
	}
	var sets, lines []string
	for _, s := range low {
		sets = append(sets, fmt.Sprintf("%s=%d", s.key, s.want))
		lines = append(lines, fmt.Sprintf("%s = %d", s.key, s.want))
	}
	remedy := fmt.Sprintf("sudo sysctl -w %s && printf '%s\\n' | sudo tee %s (or let tmbox do it with --fix)",
		strings.Join(sets, " "), strings.Join(lines, `\n`), inotifySysctlConf)
	var r Result
	if watches < inotifyWatchesFloor || instances < inotifyInstancesFloor {
		r = Fail(remedy, "%s: far below kind's recommended %d and %d; pods will fail with \"too many open files\"", found, inotifyWatchesWant, inotifyInstancesWant)
	} else {
		r = Warn(remedy, "%s: below kind's recommended %d and %d; pods may fail with \"too many open files\"", found, inotifyWatchesWant, inotifyInstancesWant)
	}
	r.Fix = inotifyFix(h, low, lines)
	return r
}

// inotifyFix raises the low settings now (through /proc) and at boot
// (through a sysctl.d file holding only those settings). Apply re-reads
// each value first and leaves alone any that is already high enough, so it
// never lowers a limit.
func inotifyFix(h *Host, low []inotifySetting, lines []string) *Fix {
	var changes []string
	for _, s := range low {
		changes = append(changes, fmt.Sprintf("write %d to /%s", s.want, s.path))
	}
	changes = append(changes, fmt.Sprintf("write %s: %s", inotifySysctlConf, strings.Join(lines, " / ")))
	conf := "# Written by tmbox (preflight --fix): kind's recommended inotify limits,\n" +
		"# https://kind.sigs.k8s.io/docs/user/known-issues/#pod-errors-due-to-too-many-open-files\n" +
		strings.Join(lines, "\n") + "\n"
	return &Fix{
		Description: "raise the inotify limits to kind's recommended values, now and at boot",
		Changes:     changes,
		Apply: func(ctx context.Context) error {
			for _, s := range low {
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("raise %s: %w", s.key, err)
				}
				cur, err := readUint(h.FS, s.path)
				if err != nil {
					return fmt.Errorf("raise %s: %w", s.key, err)
				}
				if cur >= s.want {
					continue // raised meanwhile; never lower it
				}
				if err := h.WriteFile("/"+s.path, []byte(strconv.FormatUint(s.want, 10)+"\n"), 0o644); err != nil {
					return fmt.Errorf("raise %s to %d: %w", s.key, s.want, err)
				}
			}
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("write %s: %w", inotifySysctlConf, err)
			}
			if err := h.WriteFile(inotifySysctlConf, []byte(conf), 0o644); err != nil {
				return fmt.Errorf("write %s: %w", inotifySysctlConf, err)
			}
			return nil
		},
	}
}

// readUint reads a file holding one unsigned number.
func readUint(fsys fs.FS, name string) (uint64, error) {
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return 0, fmt.Errorf("read /%s: %w", name, err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse /%s: %w", name, err)
	}
	return n, nil
}

// ---- host-ports ----

// checkPorts binds each of req.Ports. A port this user may not bind
// (below net.ipv4.ip_unprivileged_port_start) only warns: a rootful engine
// binds it, a rootless one cannot.
func checkPorts(h *Host, req HostRequirements) Result {
	var busy, denied, ports []string
	for _, addr := range req.Ports {
		err := h.PortFree(addr)
		if err == nil {
			continue
		}
		port := addr
		if _, p, serr := net.SplitHostPort(addr); serr == nil {
			port = p
		}
		if errors.Is(err, fs.ErrPermission) {
			denied = append(denied, fmt.Sprintf("%s (%v)", addr, err))
			continue
		}
		busy = append(busy, fmt.Sprintf("%s (%v)", addr, err))
		ports = append(ports, port)
	}
	if len(busy) > 0 {
		var ss []string
		for _, p := range ports {
			ss = append(ss, fmt.Sprintf("sudo ss -ltnp 'sport = :%s'", p))
		}
		return Fail(fmt.Sprintf("free it (see what holds it: %s) or choose other ports with --http-port/--https-port", strings.Join(ss, "; ")),
			"in use: %s", strings.Join(busy, "; "))
	}
	if len(denied) > 0 {
		return Warn("fine with rootful Docker/Podman; for a rootless engine allow it: sudo sysctl -w net.ipv4.ip_unprivileged_port_start=80, or choose ports above 1023 with --http-port/--https-port",
			"cannot test as this user: %s", strings.Join(denied, "; "))
	}
	return Pass("%s free", strings.Join(req.Ports, ", "))
}

// ---- proxy ----

// checkProxy looks at HTTP_PROXY, HTTPS_PROXY and NO_PROXY (upper case
// first, then lower case, as kind does). kind nodes inherit them, so hosts
// tmbox must reach directly have to be covered by NO_PROXY: a warning
// normally, a failure when air-gapped (a proxy cannot reach a local
// registry or bundle mirror).
func checkProxy(h *Host, req HostRequirements) Result {
	var set []string
	for _, name := range []string{"HTTP_PROXY", "HTTPS_PROXY"} {
		if v, which := envEither(h, name); v != "" {
			set = append(set, which+"="+redactProxy(v))
		}
	}
	if len(set) == 0 {
		return Pass("no HTTP_PROXY/HTTPS_PROXY set")
	}
	noProxy, noProxyVar := envEither(h, "NO_PROXY")
	if noProxyVar == "" {
		noProxyVar = "NO_PROXY"
	}
	entries := splitNoProxy(noProxy)
	needed := append([]string{"localhost", "127.0.0.1"}, req.NoProxyHosts...)
	var missing []string
	for _, n := range needed {
		host := proxyHost(n)
		if host == "" || containsFold(missing, host) {
			continue
		}
		if !noProxyCovers(entries, host) {
			missing = append(missing, host)
		}
	}
	proxies := strings.Join(set, ", ")
	if len(missing) == 0 {
		return Pass("%s; %s=%s covers %s; kind nodes inherit these settings", proxies, noProxyVar, noProxy, strings.Join(uniqueHosts(needed), ", "))
	}
	add := missing
	for _, d := range []string{".svc", ".cluster.local"} {
		if !containsFold(entries, d) && !containsFold(entries, strings.TrimPrefix(d, ".")) {
			add = append(add, d)
		}
	}
	value := strings.Join(append(append([]string{}, entries...), add...), ",")
	remedy := fmt.Sprintf("export NO_PROXY=%s no_proxy=%s", value, value)
	if req.AirGapped {
		return Fail(remedy, "%s is set but NO_PROXY does not cover %s: an air-gapped install would send that traffic to the proxy", proxies, strings.Join(missing, ", "))
	}
	return Warn(remedy, "%s is set (kind nodes inherit it) but NO_PROXY does not cover %s: that traffic would go through the proxy", proxies, strings.Join(missing, ", "))
}

// envEither returns the upper-case variable's value, else the lower-case
// one's, and which name held it.
func envEither(h *Host, upper string) (value, name string) {
	if v := h.Getenv(upper); v != "" {
		return v, upper
	}
	lower := strings.ToLower(upper)
	if v := h.Getenv(lower); v != "" {
		return v, lower
	}
	return "", ""
}

// redactProxy hides a password in a proxy URL.
func redactProxy(v string) string {
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		if strings.Contains(v, "@") {
			return "(set, unparsable)"
		}
		return v
	}
	return u.Redacted()
}

// splitNoProxy splits a NO_PROXY value into its non-empty entries.
func splitNoProxy(v string) []string {
	var out []string
	for e := range strings.SplitSeq(v, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// proxyHost reduces "https://host:5000/path", "host:5000" or "[::1]" to
// the bare, lower-case host.
func proxyHost(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	if i := strings.IndexAny(s, "/?#"); i >= 0 {
		s = s[:i]
	}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		s = s[i+1:]
	}
	if h, _, err := net.SplitHostPort(s); err == nil {
		s = h
	}
	return strings.ToLower(strings.Trim(s, "[]"))
}

// noProxyCovers reports whether an entry of NO_PROXY covers host. Entries
// follow Go's net/http semantics (golang.org/x/net/http/httpproxy): "*"
// covers everything; an IP or CIDR covers matching IPs; "example.com"
// covers example.com and its subdomains; ".example.com" (or
// "*.example.com") covers only subdomains. Ports in entries are ignored.
func noProxyCovers(entries []string, host string) bool {
	ip, ipErr := netip.ParseAddr(host)
	for _, raw := range entries {
		e := strings.ToLower(strings.TrimSpace(raw))
		if e == "*" {
			return true
		}
		if p, err := netip.ParsePrefix(e); err == nil {
			if ipErr == nil && p.Contains(ip.Unmap()) {
				return true
			}
			continue
		}
		e = proxyHost(e)
		if a, err := netip.ParseAddr(e); err == nil {
			if ipErr == nil && a.Unmap() == ip.Unmap() {
				return true
			}
			continue
		}
		if ipErr == nil {
			continue // domain entries do not cover IP literals
		}
		e = strings.TrimPrefix(e, "*")
		if strings.HasPrefix(e, ".") {
			if strings.HasSuffix(host, e) && len(host) > len(e) {
				return true
			}
			continue
		}
		if host == e || strings.HasSuffix(host, "."+e) {
			return true
		}
	}
	return false
}

// uniqueHosts returns the bare hosts of hs without duplicates.
func uniqueHosts(hs []string) []string {
	var out []string
	for _, h := range hs {
		if h = proxyHost(h); h != "" && !containsFold(out, h) {
			out = append(out, h)
		}
	}
	return out
}

// containsFold reports whether ss holds s, ignoring case.
func containsFold(ss []string, s string) bool {
	for _, x := range ss {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// formatBytes renders n as GiB (or MiB below 1 GiB).
func formatBytes(n uint64) string {
	if n >= 1<<30 {
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 1, 64) + " GiB"
	}
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 0, 64) + " MiB"
}
