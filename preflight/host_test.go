package preflight

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"
)

const gib = 1 << 30

// fakeHost is a recorded host state. Its zero-value fields are filled by
// newFake with a healthy linux/amd64 kind host running Docker 27.3.1.
type fakeHost struct {
	goos, goarch string
	cpus         int
	fs           fstest.MapFS
	env          map[string]string
	paths        map[string]string // LookPath results
	cmds         map[string]cmdResult
	free         map[string]uint64 // FreeDisk by path
	ports        map[string]error  // PortFree by address

	mu        sync.Mutex
	ran       []string          // commands run, "name arg..."
	freeAsked []string          // FreeDisk paths
	written   map[string]string // WriteFile path → content
}

type cmdResult struct {
	out string
	err error
}

func newFake() *fakeHost {
	return &fakeHost{
		goos: "linux", goarch: "amd64", cpus: 8,
		fs: fstest.MapFS{
			"etc/os-release":                         {Data: []byte("NAME=\"Ubuntu\"\nPRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\n")},
			"proc/meminfo":                           {Data: []byte("MemTotal:       16777216 kB\nMemFree:         1234 kB\n")},
			"sys/fs/cgroup/cgroup.controllers":       {Data: []byte("cpuset cpu io memory pids\n")},
			"proc/sys/fs/inotify/max_user_watches":   {Data: []byte("524288\n")},
			"proc/sys/fs/inotify/max_user_instances": {Data: []byte("512\n")},
		},
		env:   map[string]string{},
		paths: map[string]string{"docker": "/usr/bin/docker"},
		cmds: map[string]cmdResult{
			"docker version --format {{.Server.Version}}": {out: "27.3.1\n"},
			"docker info --format {{.DockerRootDir}}":     {out: "/var/lib/docker\n"},
		},
		free:    map[string]uint64{"/var/lib/docker": 200 * gib},
		ports:   map[string]error{},
		written: map[string]string{},
	}
}

func (f *fakeHost) host() *Host {
	return &Host{
		FS:     f.fs,
		GOOS:   f.goos,
		GOARCH: f.goarch,
		NumCPU: f.cpus,
		Getenv: func(k string) string { return f.env[k] },
		LookPath: func(name string) (string, error) {
			if p, ok := f.paths[name]; ok {
				return p, nil
			}
			return "", fmt.Errorf("exec: %q: executable file not found in $PATH", name)
		},
		Command: func(ctx context.Context, name string, args ...string) ([]byte, error) {
			line := strings.Join(append([]string{name}, args...), " ")
			f.mu.Lock()
			f.ran = append(f.ran, line)
			f.mu.Unlock()
			r, ok := f.cmds[line]
			if !ok {
				return nil, fmt.Errorf("run %s: unexpected command in test", line)
			}
			return []byte(r.out), r.err
		},
		FreeDisk: func(path string) (uint64, error) {
			f.mu.Lock()
			f.freeAsked = append(f.freeAsked, path)
			f.mu.Unlock()
			if n, ok := f.free[path]; ok {
				return n, nil
			}
			return 0, fmt.Errorf("statfs %s: no such file or directory", path)
		},
		PortFree: func(addr string) error { return f.ports[addr] },
		WriteFile: func(path string, data []byte, _ fs.FileMode) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.written[path] = string(data)
			return nil
		},
	}
}

func kindReq() HostRequirements {
	return HostRequirements{
		CPUs: 4, Memory: 8 * gib, Disk: 40 * gib, Kind: true,
		Ports: []string{"127.0.0.1:80", "127.0.0.1:443"},
	}
}

// runCheck runs the named check from HostChecks directly.
func runCheck(t *testing.T, h *Host, req HostRequirements, name string) Result {
	t.Helper()
	for _, c := range HostChecks(h, req) {
		if c.Name() == name {
			if c.Category() != CategoryHost {
				t.Errorf("%s: category %q", name, c.Category())
			}
			return c.Run(context.Background())
		}
	}
	t.Fatalf("HostChecks did not return %q", name)
	return Result{}
}

// hostCase is one recorded state and what a check must report for it.
type hostCase struct {
	name      string
	setup     func(f *fakeHost, req *HostRequirements)
	status    Status
	msg       []string // substrings of Message
	remedy    []string // substrings of Remediation
	wantExact string   // exact Message, when set
}

func runCases(t *testing.T, check string, cases []hostCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, req := newFake(), kindReq()
			if tc.setup != nil {
				tc.setup(f, &req)
			}
			r := runCheck(t, f.host(), req, check)
			if r.Status != tc.status {
				t.Errorf("status %q, want %q (message %q, remediation %q)", r.Status, tc.status, r.Message, r.Remediation)
			}
			if tc.wantExact != "" && r.Message != tc.wantExact {
				t.Errorf("message %q, want %q", r.Message, tc.wantExact)
			}
			for _, s := range tc.msg {
				if !strings.Contains(r.Message, s) {
					t.Errorf("message %q lacks %q", r.Message, s)
				}
			}
			for _, s := range tc.remedy {
				if !strings.Contains(r.Remediation, s) {
					t.Errorf("remediation %q lacks %q", r.Remediation, s)
				}
			}
			if r.Status != StatusPass && r.Remediation == "" {
				t.Errorf("%s without remediation: %q", r.Status, r.Message)
			}
		})
	}
}

func TestOSArch(t *testing.T) {
	runCases(t, CheckOSArch, []hostCase{
		{name: "linux/amd64", status: StatusPass, wantExact: "linux/amd64 (Ubuntu 24.04.1 LTS)"},
		{name: "linux/arm64 without os-release", setup: func(f *fakeHost, _ *HostRequirements) {
			f.goarch = "arm64"
			delete(f.fs, "etc/os-release")
		}, status: StatusPass, wantExact: "linux/arm64"},
		{name: "linux/riscv64 kind", setup: func(f *fakeHost, _ *HostRequirements) { f.goarch = "riscv64" },
			status: StatusFail, msg: []string{"linux/riscv64", "linux/amd64 and linux/arm64"}, remedy: []string{"amd64"}},
		{name: "linux/riscv64 remote cluster", setup: func(f *fakeHost, r *HostRequirements) { f.goarch = "riscv64"; r.Kind = false },
			status: StatusPass, msg: []string{"linux/riscv64"}},
		{name: "darwin kind", setup: func(f *fakeHost, _ *HostRequirements) { f.goos, f.goarch = "darwin", "arm64" },
			status: StatusWarn, msg: []string{"kind on darwin runs", "VM"}, remedy: []string{"colima start --cpu 4 --memory 8", "podman machine set --cpus 4 --memory 8192"}},
		{name: "darwin remote cluster", setup: func(f *fakeHost, r *HostRequirements) { f.goos, f.goarch = "darwin", "arm64"; r.Kind = false },
			status: StatusPass, msg: []string{"darwin/arm64"}},
	})
}

func TestCPU(t *testing.T) {
	runCases(t, CheckCPU, []hostCase{
		{name: "enough", status: StatusPass, wantExact: "8 CPUs, the release needs 4"},
		{name: "exactly", setup: func(f *fakeHost, _ *HostRequirements) { f.cpus = 4 }, status: StatusPass},
		{name: "half", setup: func(f *fakeHost, _ *HostRequirements) { f.cpus = 2 },
			status: StatusWarn, msg: []string{"2 CPUs, the release needs 4", "Pending"}, remedy: []string{"at least 4 CPUs"}},
		{name: "too few", setup: func(f *fakeHost, _ *HostRequirements) { f.cpus = 1 },
			status: StatusFail, msg: []string{"1 CPUs, the release needs 4"}, remedy: []string{"at least 4 CPUs"}},
	})
}

func meminfo(kb uint64) *fstest.MapFile {
	return &fstest.MapFile{Data: fmt.Appendf(nil, "MemTotal:       %d kB\nMemAvailable:   1 kB\n", kb)}
}

func TestMemory(t *testing.T) {
	runCases(t, CheckMemory, []hostCase{
		{name: "enough", status: StatusPass, wantExact: "16.0 GiB memory, the release needs 8.0 GiB"},
		{name: "more than half", setup: func(f *fakeHost, _ *HostRequirements) { f.fs["proc/meminfo"] = meminfo(6 * 1024 * 1024) },
			status: StatusWarn, msg: []string{"6.0 GiB memory, the release needs 8.0 GiB"}, remedy: []string{"at least 8.0 GiB"}},
		{name: "too little", setup: func(f *fakeHost, _ *HostRequirements) { f.fs["proc/meminfo"] = meminfo(2 * 1024 * 1024) },
			status: StatusFail, msg: []string{"2.0 GiB memory"}, remedy: []string{"at least 8.0 GiB"}},
		{name: "unreadable", setup: func(f *fakeHost, _ *HostRequirements) { delete(f.fs, "proc/meminfo") },
			status: StatusWarn, msg: []string{"cannot read the host's memory", "/proc/meminfo"}},
		{name: "garbled", setup: func(f *fakeHost, _ *HostRequirements) {
			f.fs["proc/meminfo"] = &fstest.MapFile{Data: []byte("MemTotal: lots kB\n")}
		},
			status: StatusWarn, msg: []string{"parse MemTotal"}},
	})
}

func TestDisk(t *testing.T) {
	runCases(t, CheckDisk, []hostCase{
		{name: "docker root reported", setup: func(f *fakeHost, _ *HostRequirements) {
			f.cmds["docker info --format {{.DockerRootDir}}"] = cmdResult{out: "/data/docker\n"}
			f.free["/data/docker"] = 50 * gib
		}, status: StatusPass, wantExact: "50.0 GiB free at /data/docker (reported by docker), the release needs 40.0 GiB"},
		{name: "half", setup: func(f *fakeHost, _ *HostRequirements) { f.free["/var/lib/docker"] = 25 * gib },
			status: StatusWarn, msg: []string{"25.0 GiB free at /var/lib/docker", "needs 40.0 GiB"}, remedy: []string{"df -h /var/lib/docker"}},
		{name: "too little", setup: func(f *fakeHost, _ *HostRequirements) { f.free["/var/lib/docker"] = 5 * gib },
			status: StatusFail, msg: []string{"5.0 GiB free at /var/lib/docker"}, remedy: []string{"df -h /var/lib/docker"}},
		{name: "daemon down uses default", setup: func(f *fakeHost, _ *HostRequirements) {
			f.cmds["docker info --format {{.DockerRootDir}}"] = cmdResult{err: errors.New("Cannot connect to the Docker daemon")}
		}, status: StatusPass, msg: []string{"/var/lib/docker (docker did not answer; its default)"}},
		{name: "no engine", setup: func(f *fakeHost, _ *HostRequirements) { f.paths = map[string]string{} },
			status: StatusPass, msg: []string{"/var/lib/docker (no container engine found"}},
		{name: "podman graph root", setup: func(f *fakeHost, _ *HostRequirements) {
			f.paths = map[string]string{"podman": "/usr/bin/podman"}
			f.cmds["podman info --format {{.Store.GraphRoot}}"] = cmdResult{out: "/home/u/.local/share/containers/storage\n"}
			f.free["/home/u/.local/share/containers/storage"] = 10 * gib
		}, status: StatusFail, msg: []string{"10.0 GiB free at /home/u/.local/share/containers/storage (reported by podman)"}},
		{name: "nerdctl", setup: func(f *fakeHost, _ *HostRequirements) {
			f.paths = map[string]string{"nerdctl": "/usr/local/bin/nerdctl"}
			f.free["/var/lib/containerd"] = 100 * gib
		}, status: StatusPass, msg: []string{"/var/lib/containerd (nerdctl's default)"}},
		{name: "statfs error", setup: func(f *fakeHost, _ *HostRequirements) { delete(f.free, "/var/lib/docker") },
			status: StatusWarn, msg: []string{"cannot measure free space at /var/lib/docker"}},
	})
}

func TestContainerEngine(t *testing.T) {
	const daemonDown = "run docker version --format {{.Server.Version}}: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\nmore detail: exit status 1"
	runCases(t, CheckContainerEngine, []hostCase{
		{name: "docker", status: StatusPass, wantExact: "docker 27.3.1 (daemon reachable)"},
		{name: "none", setup: func(f *fakeHost, _ *HostRequirements) { f.paths = map[string]string{} },
			status: StatusFail, msg: []string{"no container engine", "docker, nerdctl, podman"},
			remedy: []string{"https://docs.docker.com/engine/install/", "https://podman.io/docs/installation"}},
		{name: "daemon down", setup: func(f *fakeHost, _ *HostRequirements) {
			f.cmds["docker version --format {{.Server.Version}}"] = cmdResult{err: errors.New(daemonDown)}
		}, status: StatusFail,
			wantExact: "docker is installed (/usr/bin/docker) but its daemon does not answer: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?",
			remedy:    []string{"sudo systemctl start docker", "docker group"}},
		{name: "docker too old", setup: func(f *fakeHost, _ *HostRequirements) {
			f.cmds["docker version --format {{.Server.Version}}"] = cmdResult{out: "19.03.13\n"}
		}, status: StatusFail, msg: []string{"docker 19.03.13 is older than 20.10"}, remedy: []string{"https://docs.docker.com/engine/install/"}},
		{name: "docker 20.10 distro build", setup: func(f *fakeHost, _ *HostRequirements) {
			f.cmds["docker version --format {{.Server.Version}}"] = cmdResult{out: "20.10.24+dfsg1\n"}
		}, status: StatusPass, msg: []string{"docker 20.10.24+dfsg1 (daemon reachable)"}},
		{name: "unparsable version", setup: func(f *fakeHost, _ *HostRequirements) {
			f.cmds["docker version --format {{.Server.Version}}"] = cmdResult{out: "dev\n"}
		}, status: StatusWarn, msg: []string{`reports version "dev"`}},
		{name: "podman", setup: func(f *fakeHost, _ *HostRequirements) {
			f.paths = map[string]string{"podman": "/usr/bin/podman"}
			f.cmds["podman info --format {{.Version.Version}}"] = cmdResult{out: "5.2.1\n"}
		}, status: StatusPass, wantExact: "podman 5.2.1 (daemon reachable)"},
		{name: "podman too old", setup: func(f *fakeHost, _ *HostRequirements) {
			f.paths = map[string]string{"podman": "/usr/bin/podman"}
			f.cmds["podman info --format {{.Version.Version}}"] = cmdResult{out: "3.4.4\n"}
		}, status: StatusFail, msg: []string{"podman 3.4.4 is older than 4.0"}, remedy: []string{"https://podman.io/docs/installation"}},
		{name: "KIND_EXPERIMENTAL_PROVIDER picks podman over docker", setup: func(f *fakeHost, _ *HostRequirements) {
			f.env["KIND_EXPERIMENTAL_PROVIDER"] = "podman"
			f.paths["podman"] = "/usr/bin/podman"
			f.cmds["podman info --format {{.Version.Version}}"] = cmdResult{out: "4.9.3\n"}
		}, status: StatusPass, wantExact: "podman 4.9.3 (daemon reachable)"},
		{name: "KIND_EXPERIMENTAL_PROVIDER names a missing engine", setup: func(f *fakeHost, _ *HostRequirements) {
			f.env["KIND_EXPERIMENTAL_PROVIDER"] = "podman"
		}, status: StatusFail, msg: []string{"KIND_EXPERIMENTAL_PROVIDER=podman but podman is not on PATH"}},
		{name: "unknown KIND_EXPERIMENTAL_PROVIDER is ignored", setup: func(f *fakeHost, _ *HostRequirements) {
			f.env["KIND_EXPERIMENTAL_PROVIDER"] = "lxd"
		}, status: StatusPass, msg: []string{"docker 27.3.1", `KIND_EXPERIMENTAL_PROVIDER="lxd" ignored`}},
		{name: "nerdctl before podman, as kind", setup: func(f *fakeHost, _ *HostRequirements) {
			f.paths = map[string]string{"nerdctl": "/usr/local/bin/nerdctl", "podman": "/usr/bin/podman"}
			f.cmds["nerdctl info --format {{.ServerVersion}}"] = cmdResult{out: "v1.7.6\n"}
		}, status: StatusPass, wantExact: "nerdctl (containerd v1.7.6 reachable)"},
		{name: "nerdctl without containerd", setup: func(f *fakeHost, _ *HostRequirements) {
			f.paths = map[string]string{"nerdctl": "/usr/local/bin/nerdctl"}
			f.cmds["nerdctl info --format {{.ServerVersion}}"] = cmdResult{err: errors.New("run nerdctl info: cannot access containerd socket")}
		}, status: StatusFail, msg: []string{"nerdctl is installed (/usr/local/bin/nerdctl) but its daemon does not answer"}, remedy: []string{"sudo systemctl start containerd"}},
		{name: "docker desktop down on darwin", setup: func(f *fakeHost, _ *HostRequirements) {
			f.goos = "darwin"
			f.cmds["docker version --format {{.Server.Version}}"] = cmdResult{err: errors.New(daemonDown)}
		}, status: StatusFail, remedy: []string{"Docker Desktop"}},
	})
}

func TestCgroups(t *testing.T) {
	runCases(t, CheckCgroups, []hostCase{
		{name: "v2", status: StatusPass, wantExact: "cgroup v2 (unified hierarchy)"},
		{name: "v1", setup: func(f *fakeHost, _ *HostRequirements) { delete(f.fs, "sys/fs/cgroup/cgroup.controllers") },
			status: StatusWarn, msg: []string{"cgroup v1", "Kubernetes 1.35+"}, remedy: []string{"systemd.unified_cgroup_hierarchy=1"}},
		{name: "darwin", setup: func(f *fakeHost, _ *HostRequirements) {
			f.goos = "darwin"
			delete(f.fs, "sys/fs/cgroup/cgroup.controllers")
		}, status: StatusPass, msg: []string{"not applicable on darwin"}},
	})
}

func inotify(f *fakeHost, watches, instances string) {
	if watches != "" {
		f.fs["proc/sys/fs/inotify/max_user_watches"] = &fstest.MapFile{Data: []byte(watches + "\n")}
	}
	if instances != "" {
		f.fs["proc/sys/fs/inotify/max_user_instances"] = &fstest.MapFile{Data: []byte(instances + "\n")}
	}
}

func TestInotify(t *testing.T) {
	const (
		bothConf = "write /etc/sysctl.d/99-tmbox-inotify.conf: fs.inotify.max_user_watches = 524288 / fs.inotify.max_user_instances = 512"
		watchesP = "write 524288 to /proc/sys/fs/inotify/max_user_watches"
		instP    = "write 512 to /proc/sys/fs/inotify/max_user_instances"
		confHead = "# Written by tmbox (preflight --fix): kind's recommended inotify limits,\n# https://kind.sigs.k8s.io/docs/user/known-issues/#pod-errors-due-to-too-many-open-files\n"
	)
	cases := []struct {
		hostCase
		changes []string          // nil: no fix expected
		written map[string]string // after Apply
	}{
		{hostCase: hostCase{name: "recommended", status: StatusPass, msg: []string{"max_user_watches=524288, max_user_instances=512"}}},
		{hostCase: hostCase{name: "higher", setup: func(f *fakeHost, _ *HostRequirements) { inotify(f, "1048576", "8192") }, status: StatusPass}},
		{
			hostCase: hostCase{name: "both below recommended", setup: func(f *fakeHost, _ *HostRequirements) { inotify(f, "100000", "300") },
				status: StatusWarn, msg: []string{"max_user_watches=100000, max_user_instances=300", "too many open files"},
				remedy: []string{"sudo sysctl -w fs.inotify.max_user_watches=524288 fs.inotify.max_user_instances=512", "/etc/sysctl.d/99-tmbox-inotify.conf"}},
			changes: []string{watchesP, instP, bothConf},
			written: map[string]string{
				"/proc/sys/fs/inotify/max_user_watches":   "524288\n",
				"/proc/sys/fs/inotify/max_user_instances": "512\n",
				"/etc/sysctl.d/99-tmbox-inotify.conf":     confHead + "fs.inotify.max_user_watches = 524288\nfs.inotify.max_user_instances = 512\n",
			},
		},
		{
			hostCase: hostCase{name: "far below", setup: func(f *fakeHost, _ *HostRequirements) { inotify(f, "8192", "128") },
				status: StatusFail, msg: []string{"max_user_watches=8192, max_user_instances=128"}},
			changes: []string{watchesP, instP, bothConf},
		},
		{
			// The higher value must not be lowered, not even at boot.
			hostCase: hostCase{name: "only instances low", setup: func(f *fakeHost, _ *HostRequirements) { inotify(f, "1048576", "128") },
				status: StatusFail, remedy: []string{"sudo sysctl -w fs.inotify.max_user_instances=512 &&"}},
			changes: []string{instP, "write /etc/sysctl.d/99-tmbox-inotify.conf: fs.inotify.max_user_instances = 512"},
			written: map[string]string{
				"/proc/sys/fs/inotify/max_user_instances": "512\n",
				"/etc/sysctl.d/99-tmbox-inotify.conf":     confHead + "fs.inotify.max_user_instances = 512\n",
			},
		},
		{
			hostCase: hostCase{name: "only watches low", setup: func(f *fakeHost, _ *HostRequirements) { inotify(f, "65536", "1024") },
				status: StatusWarn},
			changes: []string{watchesP, "write /etc/sysctl.d/99-tmbox-inotify.conf: fs.inotify.max_user_watches = 524288"},
		},
		{hostCase: hostCase{name: "unreadable", setup: func(f *fakeHost, _ *HostRequirements) {
			delete(f.fs, "proc/sys/fs/inotify/max_user_instances")
		}, status: StatusWarn, msg: []string{"cannot read the inotify limits", "/proc/sys/fs/inotify/max_user_instances"}}},
		{hostCase: hostCase{name: "darwin", setup: func(f *fakeHost, _ *HostRequirements) { f.goos = "darwin"; inotify(f, "1", "1") },
			status: StatusPass, msg: []string{"not applicable on darwin"}}},
	}
	for _, tc := range cases {
		runCases(t, CheckInotify, []hostCase{tc.hostCase})
		t.Run(tc.name+"/fix", func(t *testing.T) {
			f, req := newFake(), kindReq()
			if tc.setup != nil {
				tc.setup(f, &req)
			}
			r := runCheck(t, f.host(), req, CheckInotify)
			if tc.changes == nil {
				if r.Fix != nil {
					t.Fatalf("unexpected fix %+v", r.Fix.Changes)
				}
				return
			}
			if r.Fix == nil {
				t.Fatal("no fix")
			}
			if !slices.Equal(r.Fix.Changes, tc.changes) {
				t.Errorf("changes:\n got %q\nwant %q", r.Fix.Changes, tc.changes)
			}
			if r.Fix.Description == "" {
				t.Error("fix without description")
			}
			if err := r.Fix.Apply(context.Background()); err != nil {
				t.Fatal(err)
			}
			if len(f.written) != len(tc.changes) {
				t.Errorf("wrote %d files for %d changes: %q", len(f.written), len(tc.changes), f.written)
			}
			for path, want := range tc.written {
				if got := f.written[path]; got != want {
					t.Errorf("%s:\n got %q\nwant %q", path, got, want)
				}
			}
		})
	}
}

// TestInotifyFixNeverLowers raises a value between the check and Apply:
// Apply must leave it alone.
func TestInotifyFixNeverLowers(t *testing.T) {
	f, req := newFake(), kindReq()
	inotify(f, "100000", "128")
	r := runCheck(t, f.host(), req, CheckInotify)
	if r.Fix == nil {
		t.Fatal("no fix")
	}
	inotify(f, "2000000", "") // someone raised max_user_watches meanwhile
	if err := r.Fix.Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, ok := f.written["/proc/sys/fs/inotify/max_user_watches"]; ok {
		t.Errorf("lowered max_user_watches from 2000000 to %q", got)
	}
	if got := f.written["/proc/sys/fs/inotify/max_user_instances"]; got != "512\n" {
		t.Errorf("max_user_instances: wrote %q", got)
	}

	// A cancelled context writes nothing.
	f.written = map[string]string{}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Fix.Apply(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Apply with cancelled ctx: %v", err)
	}
	if len(f.written) != 0 {
		t.Errorf("wrote %q after cancel", f.written)
	}
}

func TestPorts(t *testing.T) {
	runCases(t, CheckPorts, []hostCase{
		{name: "free", status: StatusPass, wantExact: "127.0.0.1:80, 127.0.0.1:443 free"},
		{name: "busy", setup: func(f *fakeHost, _ *HostRequirements) {
			f.ports["127.0.0.1:443"] = errors.New("bind 127.0.0.1:443: listen tcp 127.0.0.1:443: bind: address already in use")
		}, status: StatusFail,
			msg:    []string{"127.0.0.1:443 (bind 127.0.0.1:443: listen tcp 127.0.0.1:443: bind: address already in use)"},
			remedy: []string{"sudo ss -ltnp 'sport = :443'", "--http-port/--https-port"}},
		{name: "privileged", setup: func(f *fakeHost, _ *HostRequirements) {
			f.ports["127.0.0.1:80"] = fmt.Errorf("bind 127.0.0.1:80: %w", fs.ErrPermission)
		}, status: StatusWarn, msg: []string{"127.0.0.1:80"}, remedy: []string{"net.ipv4.ip_unprivileged_port_start"}},
	})
}

func TestProxy(t *testing.T) {
	env := func(kv ...string) func(f *fakeHost, _ *HostRequirements) {
		return func(f *fakeHost, _ *HostRequirements) {
			for i := 0; i < len(kv); i += 2 {
				f.env[kv[i]] = kv[i+1]
			}
		}
	}
	airgap := func(kv ...string) func(f *fakeHost, r *HostRequirements) {
		return func(f *fakeHost, r *HostRequirements) {
			env(kv...)(f, r)
			r.AirGapped = true
			r.NoProxyHosts = []string{"registry.local:5000", "10.1.2.3"}
		}
	}
	runCases(t, CheckProxy, []hostCase{
		{name: "none", status: StatusPass, wantExact: "no HTTP_PROXY/HTTPS_PROXY set"},
		{name: "only NO_PROXY", setup: env("NO_PROXY", "example.com"), status: StatusPass},
		{name: "covered", setup: env("HTTPS_PROXY", "http://user:secret@proxy:3128", "NO_PROXY", "localhost,127.0.0.0/8"),
			status: StatusPass, msg: []string{"HTTPS_PROXY=http://user:xxxxx@proxy:3128", "kind nodes inherit"}},
		{name: "not covered", setup: env("HTTP_PROXY", "http://proxy:3128", "NO_PROXY", "localhost"),
			status: StatusWarn, msg: []string{"does not cover 127.0.0.1"},
			remedy: []string{"export NO_PROXY=localhost,127.0.0.1,.svc,.cluster.local no_proxy=localhost,127.0.0.1,.svc,.cluster.local"}},
		{name: "lower case", setup: env("https_proxy", "http://proxy:3128"),
			status: StatusWarn, msg: []string{"https_proxy=http://proxy:3128", "localhost, 127.0.0.1"}},
		{name: "air-gapped not covered", setup: airgap("HTTPS_PROXY", "http://proxy:3128", "no_proxy", "localhost,127.0.0.1,.svc"),
			status: StatusFail, msg: []string{"does not cover registry.local, 10.1.2.3"},
			remedy: []string{"export NO_PROXY=localhost,127.0.0.1,.svc,registry.local,10.1.2.3,.cluster.local no_proxy="}},
		{name: "air-gapped covered by suffix and CIDR", setup: airgap("HTTPS_PROXY", "http://proxy:3128", "NO_PROXY", "localhost, 127.0.0.1, .local, 10.0.0.0/8"),
			status: StatusPass},
		{name: "air-gapped covered by star", setup: airgap("HTTP_PROXY", "http://proxy:3128", "NO_PROXY", "*"), status: StatusPass},
		{name: "air-gapped without proxy", setup: airgap(), status: StatusPass},
	})
}

func TestNoProxyCovers(t *testing.T) {
	for _, tc := range []struct {
		entries string
		host    string
		want    bool
	}{
		{"registry.local", "registry.local", true},
		{"Registry.Local:5000", "registry.local", true},
		{"local", "registry.local", true},
		{".local", "registry.local", true},
		{"*.local", "registry.local", true},
		{".registry.local", "registry.local", false},
		{"istry.local", "registry.local", false},
		{"example.com", "registry.local", false},
		{"10.0.0.0/8", "10.1.2.3", true},
		{"10.0.0.0/8", "11.1.2.3", false},
		{"10.1.2.3", "10.1.2.3", true},
		{"local", "10.1.2.3", false},
		{"::1", "::1", true},
		{"[::1]", "::1", true},
		{"fd00::/8", "fd00::5", true},
		{"*", "anything", true},
		{"", "localhost", false},
	} {
		if got := noProxyCovers(splitNoProxy(tc.entries), proxyHost(tc.host)); got != tc.want {
			t.Errorf("NO_PROXY=%q covers %q = %v, want %v", tc.entries, tc.host, got, tc.want)
		}
	}
}

func checkNames(cs []Check) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name())
	}
	return out
}

func TestHostChecksSelection(t *testing.T) {
	h := newFake().host()
	req := kindReq()
	all := []string{CheckOSArch, CheckCPU, CheckMemory, CheckDisk, CheckContainerEngine, CheckCgroups, CheckInotify, CheckPorts, CheckProxy}
	if got := checkNames(HostChecks(h, req)); !slices.Equal(got, all) {
		t.Errorf("kind: %q, want %q", got, all)
	}
	req.Ports = nil
	if got := checkNames(HostChecks(h, req)); slices.Contains(got, CheckPorts) {
		t.Errorf("kind without ports: %q", got)
	}
	req.Kind = false
	req.Ports = []string{"127.0.0.1:80"}
	if got, want := checkNames(HostChecks(h, req)), []string{CheckOSArch, CheckProxy}; !slices.Equal(got, want) {
		t.Errorf("not kind: %q, want %q", got, want)
	}
}

// TestHostChecksHealthy runs every check through Run on a healthy host.
func TestHostChecksHealthy(t *testing.T) {
	f := newFake()
	rep := Run(context.Background(), HostChecks(f.host(), kindReq()), Options{})
	for _, r := range rep.Results {
		if r.Status != StatusPass {
			t.Errorf("%s: %s: %s", r.Name, r.Status, r.Message)
		}
	}
	if err := rep.Err(); err != nil {
		t.Error(err)
	}
}

// TestHostChecksEngineTimeout: an engine that never answers costs the
// timeout, not more, and fails container-engine saying so.
func TestHostChecksEngineTimeout(t *testing.T) {
	f := newFake()
	h := f.host()
	h.Command = func(ctx context.Context, name string, args ...string) ([]byte, error) {
		<-ctx.Done()
		return nil, fmt.Errorf("run %s: %w", name, ctx.Err())
	}
	const timeout = 150 * time.Millisecond
	start := time.Now()
	rep := Run(context.Background(), HostChecks(h, kindReq()), Options{Timeout: timeout})
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Run took %s with a %s timeout", d, timeout)
	}
	var r *Result
	for i := range rep.Results {
		if rep.Results[i].Name == CheckContainerEngine {
			r = &rep.Results[i]
		}
	}
	if r == nil {
		t.Fatal("no container-engine result")
	}
	if r.Status != StatusFail {
		t.Fatalf("status %s: %s", r.Status, r.Message)
	}
	// Run's own timeout and the check's reaction to its ctx race; either
	// message names the timeout.
	if !strings.Contains(r.Message, "did not finish within 150ms") &&
		!strings.Contains(r.Message, "did not answer within the preflight timeout") {
		t.Errorf("message %q does not name the timeout", r.Message)
	}
	if r.Duration > time.Second {
		t.Errorf("check took %s", r.Duration)
	}
}

// TestLocalHost exercises the real implementations; it needs no container
// engine.
func TestLocalHost(t *testing.T) {
	h := LocalHost()
	if h.GOOS != runtime.GOOS || h.NumCPU < 1 {
		t.Errorf("GOOS %q NumCPU %d", h.GOOS, h.NumCPU)
	}
	if runtime.GOOS == "linux" {
		n, err := memTotal(h.FS)
		if err != nil || n == 0 {
			t.Errorf("memTotal: %d, %v", n, err)
		}
	}
	free, err := h.FreeDisk("/")
	if err != nil || free == 0 {
		t.Errorf("FreeDisk(/): %d, %v", free, err)
	}
	missing := filepath.Join(t.TempDir(), "not", "yet", "there")
	if free, err := h.FreeDisk(missing); err != nil || free == 0 {
		t.Errorf("FreeDisk(%s): %d, %v", missing, free, err)
	}
	if err := h.PortFree("127.0.0.1:0"); err != nil {
		t.Errorf("PortFree: %v", err)
	}
	out, err := h.Command(context.Background(), "go", "env", "GOOS")
	if err != nil || strings.TrimSpace(string(out)) != runtime.GOOS {
		t.Errorf("Command(go env GOOS): %q, %v", out, err)
	}
	if _, err := h.Command(context.Background(), "go", "no-such-subcommand"); err == nil || !strings.Contains(err.Error(), "no-such-subcommand") {
		t.Errorf("Command error lacks stderr: %v", err)
	}
}
