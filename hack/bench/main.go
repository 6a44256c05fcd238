// Command bench measures tmbox against what a user would script by hand,
// on real test clusters, and writes docs/performance.md. Run it through
// `make bench`, which builds bin/tmbox and the test cluster binaries and
// runs this inside a loopback-only network namespace.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/tmbox/tmbox/internal/testcluster"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type config struct {
	tmbox, kubectl, mirror, out, bundleBench string
	runs                                     int
}

func run() error {
	var c config
	flag.StringVar(&c.tmbox, "tmbox", "bin/tmbox", "tmbox binary")
	flag.StringVar(&c.mirror, "mirror", "../shared/upstream", "upstream manifests")
	flag.StringVar(&c.out, "out", "docs/performance.md", "report to write")
	flag.StringVar(&c.bundleBench, "bundle-bench", "", "output of go test -bench VerifyBundle ./bundle")
	flag.IntVar(&c.runs, "runs", 3, "runs of each cluster scenario")
	flag.Parse()
	bin := os.Getenv(testcluster.BinEnv)
	if bin == "" {
		return fmt.Errorf("%s is not set", testcluster.BinEnv)
	}
	c.kubectl = filepath.Join(bin, "kubectl")
	var err error
	if c.tmbox, err = filepath.Abs(c.tmbox); err != nil {
		return err
	}
	if c.mirror, err = filepath.Abs(c.mirror); err != nil {
		return err
	}
	ctx := context.Background()
	r := &report{Date: time.Now().UTC().Format("2006-01-02 15:04 MST"), Runs: c.runs, GoVersion: runtime.Version(), Machine: machine()}

	rendered, err := os.MkdirTemp("", "tmbox-bench-render-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(rendered)
	if _, err := c.cmd(ctx, nil, c.tmbox, "render", "--release", "1.23", "--mirror", c.mirror, "-o", rendered); err != nil {
		return fmt.Errorf("render: %w", err)
	}
	var install, baseline, noop, upgrade, preflight, rss []float64
	for i := 1; i <= c.runs; i++ {
		log("run %d/%d: baseline (kubectl apply --server-side + kubectl wait)", i, c.runs)
		d, err := withCluster(ctx, bin, func(cl *testcluster.Cluster) (time.Duration, error) { return c.baseline(ctx, cl, rendered) })
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		baseline = append(baseline, d.Seconds())

		log("run %d/%d: tmbox install, no-op re-run, preflight", i, c.runs)
		_, err = withCluster(ctx, bin, func(cl *testcluster.Cluster) (time.Duration, error) {
			res, err := c.cmd(ctx, nil, c.tmbox, "install", "--release", "1.23", "--mirror", c.mirror, "--kubeconfig", cl.Kubeconfig, "--yes")
			if err != nil {
				return 0, err
			}
			install, rss = append(install, res.wall.Seconds()), append(rss, float64(res.maxRSSKB)/1024)
			if res, err = c.cmd(ctx, nil, c.tmbox, "install", "--release", "1.23", "--mirror", c.mirror, "--kubeconfig", cl.Kubeconfig, "--yes"); err != nil {
				return 0, err
			}
			noop = append(noop, res.wall.Seconds())
			if res, err = c.cmd(ctx, nil, c.tmbox, "preflight", "--release", "1.23", "--mirror", c.mirror, "--kubeconfig", cl.Kubeconfig); err != nil {
				return 0, err
			}
			preflight = append(preflight, res.wall.Seconds())
			return 0, nil
		})
		if err != nil {
			return fmt.Errorf("install: %w", err)
		}

		log("run %d/%d: tmbox upgrade 1.21 → 1.23", i, c.runs)
		d, err = withCluster(ctx, bin, func(cl *testcluster.Cluster) (time.Duration, error) {
			if _, err := c.cmd(ctx, nil, c.tmbox, "install", "--release", "1.21", "--mirror", c.mirror, "--kubeconfig", cl.Kubeconfig, "--yes"); err != nil {
				return 0, err
			}
			res, err := c.cmd(ctx, nil, c.tmbox, "upgrade", "--to", "1.23", "--mirror", c.mirror, "--kubeconfig", cl.Kubeconfig, "--yes")
			return res.wall, err
		})
		if err != nil {
			return fmt.Errorf("upgrade: %w", err)
		}
		upgrade = append(upgrade, d.Seconds())
	}
	log("startup: tmbox --help and tmbox version, 20 runs each")
	var help, version []float64
	for range 20 {
		res, err := c.cmd(ctx, nil, c.tmbox, "--help")
		if err != nil {
			return err
		}
		help = append(help, res.wall.Seconds()*1000)
		if res, err = c.cmd(ctx, nil, c.tmbox, "version"); err != nil {
			return err
		}
		version = append(version, res.wall.Seconds()*1000)
	}

	if err := r.startupProfile(ctx, c.tmbox); err != nil {
		return err
	}
	r.add("install", "full stack, release 1.23 (s)", install)
	r.add("baseline", "kubectl apply --server-side + kubectl wait, same objects (s)", baseline)
	r.add("noop", "no-op re-run of the install (s)", noop)
	r.add("upgrade", "upgrade 1.21 → 1.23, two hops (s)", upgrade)
	r.add("preflight", "preflight against the cluster, release 1.23 (s)", preflight)
	r.add("help", "tmbox --help (ms)", help)
	r.add("version", "tmbox version (ms)", version)
	r.add("rss", "peak RSS of tmbox during install (MB)", rss)

	m := r.medians()
	r.target("install ≤ 0.5× the baseline", fmt.Sprintf("%.2f×", m["install"]/m["baseline"]), m["install"] <= 0.5*m["baseline"])
	r.target("no-op re-run ≤ 5 s", fmt.Sprintf("%.2f s", m["noop"]), m["noop"] <= 5)
	r.target("no-op re-run ≤ 0.1× the first install", fmt.Sprintf("%.3f×", m["noop"]/m["install"]), m["noop"] <= 0.1*m["install"])
	r.target("tmbox --help ≤ 100 ms", fmt.Sprintf("%.0f ms", m["help"]), m["help"] <= 100)
	r.target("peak RSS during install ≤ 300 MB", fmt.Sprintf("%.0f MB", m["rss"]), m["rss"] <= 300)
	if c.bundleBench != "" {
		verify, sum, err := bundleThroughput(c.bundleBench)
		if err != nil {
			return err
		}
		r.add("verify", "tmbox bundle verify of a 66 MB bundle file (MB/s)", verify)
		r.add("sha256sum", "sha256sum of the same file (MB/s)", sum)
		vm, sm := median(verify), median(sum)
		r.target("bundle verify ≥ 0.8× sha256sum's throughput", fmt.Sprintf("%.2f×", vm/sm), vm >= 0.8*sm)
	} else {
		r.Notes = append(r.Notes, "bundle verify: skipped (no -bundle-bench output given)")
	}
	f, err := os.Create(c.out)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := reportTemplate.Execute(f, r); err != nil {
		return err
	}
	log("wrote %s", c.out)
	for _, t := range r.Targets {
		log("%-45s %-10s %s", t.Name, t.Value, t.Verdict())
	}
	return nil
}

func log(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// withCluster runs f against a fresh test cluster.
func withCluster(ctx context.Context, bin string, f func(*testcluster.Cluster) (time.Duration, error)) (time.Duration, error) {
	cl, err := testcluster.Start(ctx, testcluster.Options{BinDir: bin})
	if err != nil {
		return 0, err
	}
	d, err := f(cl)
	return d, errors.Join(err, cl.Stop())
}

type result struct {
	wall     time.Duration
	maxRSSKB int64
	output   string
}

// cmd runs a process and measures its wall time and peak RSS.
func (c *config) cmd(ctx context.Context, env []string, name string, args ...string) (result, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	res := result{wall: time.Since(start), output: string(out)}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.maxRSSKB = ru.Maxrss
	}
	if err != nil {
		return res, fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, lastLines(string(out), 20))
	}
	return res, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// baseline does what a careful user would do by hand with the same
// objects: per component, kubectl apply --server-side (again once the CRDs
// are established, when the first apply hit a kind not yet served), kubectl
// create for the generateName Jobs, then kubectl wait for CRDs Established
// and Deployments Available in the component's namespaces.
func (c *config) baseline(ctx context.Context, cl *testcluster.Cluster, dir string) (time.Duration, error) {
	files, err := filepath.Glob(filepath.Join(dir, "[0-9][0-9]-*.yaml"))
	if err != nil {
		return 0, err
	}
	slices.Sort(files)
	kc := []string{"--kubeconfig", cl.Kubeconfig}
	k := func(args ...string) error {
		_, err := c.cmd(ctx, nil, c.kubectl, append(kc, args...)...)
		return err
	}
	start := time.Now()
	for _, f := range files {
		if strings.HasSuffix(f, "-create.yaml") {
			continue
		}
		var err error
		for attempt := 0; attempt < 5; attempt++ {
			if err = k("apply", "--server-side", "--force-conflicts", "-f", f); err == nil {
				break
			}
			_ = k("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
		}
		if err != nil {
			return 0, err
		}
		if create := strings.TrimSuffix(f, ".yaml") + "-create.yaml"; fileExists(create) {
			if err := k("create", "-f", create); err != nil {
				return 0, err
			}
		}
		if err := k("wait", "--for=condition=Established", "crd", "--all", "--timeout=120s"); err != nil {
			return 0, err
		}
		for _, ns := range namespacesOf(f) {
			if err := k("wait", "--for=condition=Available", "deployment", "--all", "-n", ns, "--timeout=300s"); err != nil {
				return 0, err
			}
		}
	}
	return time.Since(start), nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

var nsLine = regexp.MustCompile(`(?m)^  namespace: (\S+)$`)

// namespacesOf lists the namespaces objects in a rendered file live in.
func namespacesOf(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, m := range nsLine.FindAllStringSubmatch(string(data), -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			out = append(out, m[1])
		}
	}
	return out
}

// bundleThroughput reads MB/s of the verify-file and sha256sum-file
// sub-benchmarks.
func bundleThroughput(path string) (verify, sum []float64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	re := regexp.MustCompile(`^BenchmarkVerifyBundle/(verify-file|sha256sum-file)\S*\s+\d+\s+\d+ ns/op\s+([\d.]+) MB/s`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := re.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		v, _ := strconv.ParseFloat(m[2], 64)
		if m[1] == "verify-file" {
			verify = append(verify, v)
		} else {
			sum = append(sum, v)
		}
	}
	if len(verify) == 0 || len(sum) == 0 {
		return nil, nil, fmt.Errorf("%s: no verify-file/sha256sum-file results", path)
	}
	return verify, sum, sc.Err()
}

func machine() string {
	cpu := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := regexp.MustCompile(`(?m)^model name\s*:\s*(.+)$`).FindStringSubmatch(string(data)); m != nil {
			cpu = m[1]
		}
	}
	mem := ""
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		if m := regexp.MustCompile(`MemTotal:\s+(\d+) kB`).FindStringSubmatch(string(data)); m != nil {
			kb, _ := strconv.ParseFloat(m[1], 64)
			mem = fmt.Sprintf(", %.1f GiB", kb/(1<<20))
		}
	}
	return fmt.Sprintf("%d CPUs (%s)%s, %s/%s", runtime.NumCPU(), cpu, mem, runtime.GOOS, runtime.GOARCH)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

type row struct {
	Key, Name        string
	Median, Min, Max float64
	N                int
}

type targetRow struct {
	Name, Value string
	Met         bool
}

func (t targetRow) Verdict() string {
	if t.Met {
		return "met"
	}
	return "NOT met"
}

type report struct {
	Date, GoVersion, Machine string
	Runs                     int
	Rows                     []row
	Targets                  []targetRow
	Notes                    []string
	// InitTotal and InitTop profile package initialisation at startup
	// (GODEBUG=inittrace=1).
	InitTotal    float64
	InitPackages int
	InitTop      []initCost
}

type initCost struct {
	Package string
	Ms      float64
}

// startupProfile records what package initialisation costs tmbox --help.
func (r *report) startupProfile(ctx context.Context, tmbox string) error {
	cmd := exec.CommandContext(ctx, tmbox, "--help")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("inittrace: %w", err)
	}
	re := regexp.MustCompile(`(?m)^init (\S+) @\S+ ms, ([\d.]+) ms clock`)
	for _, m := range re.FindAllStringSubmatch(stderr.String(), -1) {
		ms, _ := strconv.ParseFloat(m[2], 64)
		r.InitTotal += ms
		r.InitPackages++
		r.InitTop = append(r.InitTop, initCost{Package: m[1], Ms: ms})
	}
	slices.SortFunc(r.InitTop, func(a, b initCost) int {
		switch {
		case a.Ms > b.Ms:
			return -1
		case a.Ms < b.Ms:
			return 1
		}
		return 0
	})
	if len(r.InitTop) > 8 {
		r.InitTop = r.InitTop[:8]
	}
	return nil
}

func (r *report) add(key, name string, xs []float64) {
	r.Rows = append(r.Rows, row{Key: key, Name: name, Median: median(xs), Min: slices.Min(xs), Max: slices.Max(xs), N: len(xs)})
}

func (r *report) medians() map[string]float64 {
	m := map[string]float64{}
	for _, row := range r.Rows {
		m[row.Key] = row.Median
	}
	return m
}

func (r *report) target(name, value string, met bool) {
	r.Targets = append(r.Targets, targetRow{Name: name, Value: value, Met: met})
}

var reportTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"f": func(x float64) string {
		if x >= 100 {
			return fmt.Sprintf("%.0f", x)
		}
		return fmt.Sprintf("%.2f", x)
	},
}).Parse(`# Performance

Generated by ` + "`make bench`" + ` on {{.Date}} — do not edit by hand.

- Machine: {{.Machine}}
- Go: {{.GoVersion}}
- Cluster scenarios: {{.Runs}} runs each, every run on a fresh test cluster
  (etcd, kube-apiserver, controller-manager, scheduler built from Kubernetes
  1.34, kwok nodes, the webhook stand-in), inside a loopback-only network
  namespace; manifests from ` + "`../shared/upstream`" + `.
- Processes are timed whole (wall clock; peak RSS from the kernel's rusage);
  bundle throughput comes from ` + "`go test -bench VerifyBundle ./bundle`" + `.

## Results

| scenario | median | min | max | runs |
|---|---|---|---|---|
{{range .Rows}}| {{.Name}} | {{f .Median}} | {{f .Min}} | {{f .Max}} | {{.N}} |
{{end}}
## Targets (ratios from the same run)

| target | measured | |
|---|---|---|
{{range .Targets}}| {{.Name}} | {{.Value}} | {{.Verdict}} |
{{end}}{{range .Notes}}
- {{.}}{{end}}

## Startup profile

` + "`GODEBUG=inittrace=1 tmbox --help`" + `: package initialisation takes
{{printf "%.0f" .InitTotal}} ms across {{.InitPackages}} packages before main runs. The most
expensive:

| package | ms |
|---|---|
{{range .InitTop}}| {{.Package}} | {{printf "%.1f" .Ms}} |
{{end}}
Every linked package's init runs at startup, whatever the command; most of
the time is the long tail of Istio's, Envoy's protobuf, Helm's and client-go's
packages, which the in-process Istio render links.

## What is compared

- **install**: ` + "`tmbox install --release 1.23 --mirror … --yes`" + ` on a fresh
  cluster: fetch and verify every manifest, render the compiled-in Istio, run
  the preflight checks, apply, wait for readiness, verify.
- **baseline**: what a careful user would script by hand with the same
  objects (` + "`tmbox render`" + ` output, rendering not timed): per component
  ` + "`kubectl apply --server-side`" + ` (re-applied once CRDs are established
  when the first apply hits a kind not yet served), ` + "`kubectl create`" + ` for
  the generateName Jobs, then ` + "`kubectl wait`" + ` for CRDs Established and
  Deployments Available in the component's namespaces.
- **no-op re-run**: the same install again; nothing changes.
- **upgrade**: 1.21 installed (not timed), then ` + "`tmbox upgrade --to 1.23`" + `.

## How to reproduce

    make test    # once: builds the test cluster's binaries
    make bench   # about 10 minutes; rewrites this file
`))
