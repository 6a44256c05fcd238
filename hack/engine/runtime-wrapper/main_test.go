package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

func TestEditSpec(t *testing.T) {
	allCaps := `["CAP_CHOWN","CAP_SYS_RESOURCE","CAP_SYS_ADMIN"]`
	for _, tc := range []struct {
		name      string
		spec      string
		isProcess bool
		mode      mode
		// wantCaps: every list's expected content (nil: the list is absent)
		wantCaps    map[string][]string
		wantOOM     any // expected process.oomScoreAdj (nil: absent)
		wantChanged int
	}{
		{
			name: "privileged bundle: every list edited",
			spec: `{"ociVersion":"1.0.2","process":{"args":["/sbin/init"],"capabilities":{"bounding":` + allCaps + `,"effective":` + allCaps + `,"inheritable":` + allCaps + `,"permitted":` + allCaps + `,"ambient":` + allCaps + `}},"linux":{"uidMappings":[{"containerID":0,"hostID":4294967294,"size":1}]}}`,
			mode: modeDocker,
			wantCaps: map[string][]string{
				"bounding": {"CAP_CHOWN", "CAP_SYS_ADMIN"}, "effective": {"CAP_CHOWN", "CAP_SYS_ADMIN"},
				"inheritable": {"CAP_CHOWN", "CAP_SYS_ADMIN"}, "permitted": {"CAP_CHOWN", "CAP_SYS_ADMIN"},
				"ambient": {"CAP_CHOWN", "CAP_SYS_ADMIN"},
			},
			wantChanged: 5,
		},
		{
			name:        "plain container: nothing to do",
			spec:        `{"process":{"capabilities":{"bounding":["CAP_CHOWN"],"effective":["CAP_CHOWN"]}}}`,
			mode:        modeDocker,
			wantCaps:    map[string][]string{"bounding": {"CAP_CHOWN"}, "effective": {"CAP_CHOWN"}},
			wantChanged: 0,
		},
		{
			name:        "only some lists present",
			spec:        `{"process":{"capabilities":{"bounding":["CAP_SYS_RESOURCE"],"permitted":["CAP_KILL","CAP_SYS_RESOURCE"]}}}`,
			mode:        modeDocker,
			wantCaps:    map[string][]string{"bounding": {}, "permitted": {"CAP_KILL"}},
			wantChanged: 2,
		},
		{
			name:        "docker mode keeps a negative oomScoreAdj",
			spec:        `{"process":{"oomScoreAdj":-998,"capabilities":{"bounding":["CAP_KILL"]}}}`,
			mode:        modeDocker,
			wantCaps:    map[string][]string{"bounding": {"CAP_KILL"}},
			wantOOM:     "-998",
			wantChanged: 0,
		},
		{
			name:        "node mode raises a negative oomScoreAdj",
			spec:        `{"process":{"oomScoreAdj":-998,"capabilities":{"bounding":["CAP_KILL","CAP_SYS_RESOURCE"]}}}`,
			mode:        modeNode,
			wantCaps:    map[string][]string{"bounding": {"CAP_KILL"}},
			wantOOM:     "0",
			wantChanged: 2,
		},
		{
			name:        "node mode keeps a positive oomScoreAdj",
			spec:        `{"process":{"oomScoreAdj":1000}}`,
			mode:        modeNode,
			wantOOM:     "1000",
			wantChanged: 0,
		},
		{
			name:        "exec process spec",
			spec:        `{"args":["sh"],"cwd":"/","oomScoreAdj":-500,"capabilities":{"bounding":` + allCaps + `,"effective":` + allCaps + `}}`,
			isProcess:   true,
			mode:        modeNode,
			wantCaps:    map[string][]string{"bounding": {"CAP_CHOWN", "CAP_SYS_ADMIN"}, "effective": {"CAP_CHOWN", "CAP_SYS_ADMIN"}},
			wantOOM:     "0",
			wantChanged: 3,
		},
		{
			name:        "no process in the spec",
			spec:        `{"ociVersion":"1.0.2"}`,
			mode:        modeNode,
			wantChanged: 0,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, changed, err := editSpec([]byte(tc.spec), tc.isProcess, tc.mode)
			if err != nil {
				t.Fatal(err)
			}
			if len(changed) != tc.wantChanged {
				t.Errorf("changed = %q, want %d changes", changed, tc.wantChanged)
			}
			if tc.wantChanged == 0 && string(out) != tc.spec {
				t.Errorf("unchanged spec rewritten:\n%s", out)
			}
			var doc map[string]any
			d := json.NewDecoder(bytes.NewReader(out))
			d.UseNumber()
			if err := d.Decode(&doc); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out)
			}
			proc := doc
			if !tc.isProcess {
				proc, _ = doc["process"].(map[string]any)
			}
			caps, _ := proc["capabilities"].(map[string]any)
			for _, list := range capLists {
				want, present := tc.wantCaps[list]
				got, ok := caps[list].([]any)
				if ok != present {
					t.Errorf("%s present = %v, want %v", list, ok, present)
					continue
				}
				var gotS []string
				for _, c := range got {
					gotS = append(gotS, c.(string))
				}
				if !slices.Equal(gotS, want) {
					t.Errorf("%s = %q, want %q", list, gotS, want)
				}
			}
			var gotOOM any
			if n, ok := proc["oomScoreAdj"].(json.Number); ok {
				gotOOM = n.String()
			}
			if !reflect.DeepEqual(gotOOM, tc.wantOOM) {
				t.Errorf("oomScoreAdj = %v, want %v", gotOOM, tc.wantOOM)
			}
			// untouched fields survive, big numbers exactly
			if !tc.isProcess && tc.name == "privileged bundle: every list edited" {
				m := doc["linux"].(map[string]any)["uidMappings"].([]any)[0].(map[string]any)
				if m["hostID"].(json.Number).String() != "4294967294" {
					t.Errorf("hostID = %v", m["hostID"])
				}
				if proc["args"].([]any)[0] != "/sbin/init" || doc["ociVersion"] != "1.0.2" {
					t.Errorf("other fields lost: %s", out)
				}
			}
		})
	}
}

func TestEditSpecInvalid(t *testing.T) {
	if _, _, err := editSpec([]byte(`{"process":`), false, modeDocker); err == nil {
		t.Fatal("no error for broken JSON")
	}
}

func TestSpecFile(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		file      string
		isProcess bool
	}{
		{[]string{"--root", "/run/runc", "--log", "/x/log.json", "--log-format", "json", "create", "--bundle", "/b", "--pid-file", "/b/init.pid", "id"}, "/b/config.json", false},
		{[]string{"--root=/r", "--systemd-cgroup", "create", "--pid-file", "p", "-b", "/b2", "id"}, "/b2/config.json", false},
		{[]string{"run", "--bundle=/b3", "id"}, "/b3/config.json", false},
		{[]string{"create", "id"}, "config.json", false},
		{[]string{"--debug", "run", "-d", "id"}, "config.json", false},
		{[]string{"--root", "/r", "exec", "--detach", "--process", "/tmp/p.json", "--pid-file", "x", "id"}, "/tmp/p.json", true},
		{[]string{"exec", "-p=/tmp/q.json", "id"}, "/tmp/q.json", true},
		{[]string{"exec", "--cwd", "/", "id", "sh", "-p", "/not/this"}, "", false},
		{[]string{"--root", "/r", "start", "id"}, "", false},
		{[]string{"--root", "/r", "delete", "--force", "id"}, "", false},
		{[]string{"--version"}, "", false},
		{[]string{"features"}, "", false},
	} {
		file, isProcess := specFile(tc.args)
		if file != tc.file || isProcess != tc.isProcess {
			t.Errorf("specFile(%q) = %q, %v; want %q, %v", tc.args, file, isProcess, tc.file, tc.isProcess)
		}
	}
}

func TestPickMode(t *testing.T) {
	for _, tc := range []struct {
		argv0, env string
		want       mode
		wantErr    bool
	}{
		{"/root/.cache/tmbox/engine/bin/tmbox-runtime-wrapper-abc", "", modeDocker, false},
		{"runc", "", modeNode, false},
		{"/usr/local/sbin/runc", "", modeNode, false},
		{"runc", "docker", modeDocker, false},
		{"x", "node", modeNode, false},
		{"x", "bogus", "", true},
	} {
		got, err := pickMode(tc.argv0, tc.env)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("pickMode(%q, %q) = %q, %v; want %q (error %v)", tc.argv0, tc.env, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestEditFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "config.json")
	if err := os.WriteFile(file, []byte(`{"process":{"oomScoreAdj":-998,"capabilities":{"bounding":["CAP_SYS_RESOURCE"]}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	changed, err := editFile(file, false, modeNode)
	if err != nil || len(changed) != 2 {
		t.Fatalf("editFile = %q, %v", changed, err)
	}
	data, _ := os.ReadFile(file)
	if want := `{"process":{"capabilities":{"bounding":[]},"oomScoreAdj":0}}` + "\n"; string(data) != want {
		t.Errorf("file = %s, want %s", data, want)
	}
	if info, _ := os.Stat(file); info.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", info.Mode())
	}
	if changed, err := editFile(filepath.Join(dir, "missing.json"), false, modeNode); err != nil || changed != nil {
		t.Errorf("missing file: %q, %v; want it left to runc", changed, err)
	}
}

func TestFindRuntime(t *testing.T) {
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := findRuntime("/opt/runc", ""); got != "/opt/runc" {
		t.Errorf("env not used: %q", got)
	}
	// PATH: a dir holding this very executable as "runc" is skipped.
	selfDir := filepath.Join(dir, "self")
	os.MkdirAll(selfDir, 0o755)
	if err := os.Link(self, filepath.Join(selfDir, "runc")); err != nil {
		t.Skipf("cannot hard-link the test binary: %v", err)
	}
	realDir := filepath.Join(dir, "real")
	os.MkdirAll(realDir, 0o755)
	os.WriteFile(filepath.Join(realDir, "runc"), []byte("#!/bin/sh\n"), 0o755)
	if got, err := findRuntime("", selfDir+":"+realDir); err != nil || got != filepath.Join(realDir, "runc") {
		t.Errorf("findRuntime = %q, %v; want %s", got, err, filepath.Join(realDir, "runc"))
	}
	if _, err := findRuntime("", selfDir); err == nil {
		t.Error("found itself as the real runc")
	}
}
