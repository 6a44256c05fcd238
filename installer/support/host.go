package support

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tmbox/tmbox/internal/engine"
)

// engineCommandTimeout bounds each container engine command.
const engineCommandTimeout = 20 * time.Second

// kindClusterLabel is the label kind puts on its node containers.
const kindClusterLabel = "io.x-k8s.kind.cluster"

// withDefaults fills the zero fields.
func (h Host) withDefaults() Host {
	if h.Root == "" {
		h.Root = "/"
	}
	if h.Engine == nil {
		h.Engine = func() (engine.Binary, error) {
			b, _, err := engine.Detect(os.Getenv, exec.LookPath)
			return b, err
		}
	}
	if h.Run == nil {
		h.Run = func(ctx context.Context, name string, args ...string) ([]byte, error) {
			return exec.CommandContext(ctx, name, args...).CombinedOutput()
		}
	}
	return h
}

// hostFile is a file of the host, under Root.
func (r *run) hostFile(name string) string { return filepath.Join(r.o.Host.Root, name) }

// copyHostFile writes a host file into the bundle; a missing one is a
// warning.
func (r *run) copyHostFile(s *sink, name, to string) error {
	data, err := os.ReadFile(r.hostFile(name))
	if err != nil {
		s.warn("%v", err)
		return nil
	}
	return s.write(to, data)
}

// hostOS writes host/os-release and host/uname.txt.
func (r *run) hostOS(_ context.Context, s *sink) error {
	if err := r.copyHostFile(s, "/etc/os-release", "host/os-release"); err != nil {
		return err
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		s.warn("uname: %v", err)
		return nil
	}
	line := fmt.Sprintf("%s %s %s %s %s\n", unix.ByteSliceToString(u.Sysname[:]), unix.ByteSliceToString(u.Nodename[:]),
		unix.ByteSliceToString(u.Release[:]), unix.ByteSliceToString(u.Version[:]), unix.ByteSliceToString(u.Machine[:]))
	return s.write("host/uname.txt", []byte(line))
}

// hostMemory writes host/meminfo.
func (r *run) hostMemory(_ context.Context, s *sink) error {
	data, err := os.ReadFile(r.hostFile("/proc/meminfo"))
	if err != nil {
		return fmt.Errorf("memory: %w", err)
	}
	return s.write("host/meminfo", data)
}

// diskSpace is one file system's space.
type diskSpace struct {
	Path string `json:"path"`
	// Statted is the path measured: Path, or its nearest existing parent.
	Statted        string `json:"statted"`
	TotalBytes     uint64 `json:"totalBytes"`
	FreeBytes      uint64 `json:"freeBytes"`
	AvailableBytes uint64 `json:"availableBytes"`
	Inodes         uint64 `json:"inodes"`
	FreeInodes     uint64 `json:"freeInodes"`
}

// hostDisk writes host/disk.json: the space of the state directory's
// file system and of /var/lib/docker's, when it exists.
func (r *run) hostDisk(_ context.Context, s *sink) error {
	var paths []string
	if r.o.StateDir != "" {
		paths = append(paths, r.o.StateDir)
	}
	if docker := r.hostFile("/var/lib/docker"); exists(docker) {
		paths = append(paths, docker)
	} else {
		s.note("%s does not exist", docker)
	}
	if len(paths) == 0 {
		return skip("no state directory and no /var/lib/docker")
	}
	var out []diskSpace
	for _, p := range paths {
		at := nearestExisting(p)
		var st unix.Statfs_t
		if err := unix.Statfs(at, &st); err != nil {
			s.warn("statfs %s: %v", at, err)
			continue
		}
		bs := uint64(st.Bsize)
		out = append(out, diskSpace{Path: p, Statted: at, TotalBytes: st.Blocks * bs, FreeBytes: st.Bfree * bs, AvailableBytes: st.Bavail * bs,
			Inodes: st.Files, FreeInodes: st.Ffree})
	}
	if len(out) == 0 {
		return errors.New("no file system could be measured")
	}
	return s.json("host/disk.json", out)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// nearestExisting is p or its nearest existing parent.
func nearestExisting(p string) string {
	for {
		if _, err := os.Stat(p); err == nil || !errors.Is(err, fs.ErrNotExist) {
			return p
		}
		parent := filepath.Dir(p)
		if parent == p {
			return p
		}
		p = parent
	}
}

// hostEngine writes host/engine.json (which engine kind would use),
// host/engine-info.txt (`<engine> info`) and host/kind-containers.txt
// (`<engine> ps -a` of kind's node containers). Without an engine the
// collector is skipped, saying so.
func (r *run) hostEngine(ctx context.Context, s *sink) error {
	bin, err := r.o.Host.Engine()
	if err != nil {
		return skip("no container engine: %v", err)
	}
	if err := s.json("host/engine.json", map[string]string{"name": bin.Name, "family": bin.Family, "path": bin.Path}); err != nil {
		return err
	}
	commands := []struct {
		file string
		args []string
	}{
		{"host/engine-info.txt", []string{"info"}},
		{"host/kind-containers.txt", []string{"ps", "-a", "--filter", "label=" + kindClusterLabel}},
	}
	for _, c := range commands {
		cctx, cancel := context.WithTimeout(ctx, engineCommandTimeout)
		out, err := r.o.Host.Run(cctx, bin.Path, c.args...)
		cancel()
		if err != nil {
			s.warn("%s %v: %v", bin.Name, c.args, err)
			if len(out) == 0 {
				continue
			}
		}
		if err := s.write(c.file, out); err != nil {
			return err
		}
	}
	return nil
}
