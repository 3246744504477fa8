package main

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestFindRepoSkipsOwnModule(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	repo, err := findRepo(wd)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := filepath.Abs(filepath.Join(wd, "..", "..", "..")); repo != want {
		t.Errorf("findRepo(%s) = %s, want %s", wd, repo, want)
	}
	if _, err := findRepo(t.TempDir()); err == nil {
		t.Error("findRepo outside the repository: no error")
	}
}

func TestTagSafe(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"v1.2.3", "v1.2.3"},
		{"v1.2.3-4-gabcdef-dirty", "v1.2.3-4-gabcdef-dirty"},
		{"feature/x+y", "feature-x-y"},
	} {
		if got := tagSafe(tc.in); got != tc.want {
			t.Errorf("tagSafe(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestLayerTar: only the given files, 0755, owned by 65532, at the fixed
// time, so equal inputs give byte-identical layers.
func TestLayerTar(t *testing.T) {
	dir := t.TempDir()
	var files []file
	for _, name := range []string{"silentauth", "kubectl-silentauth"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("binary "+name), 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, file{name: name, path: p})
	}
	at := time.Unix(0, 0).UTC()
	a, err := layerTar(files, at)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := layerTar(files, at)
	if !bytes.Equal(a, b) {
		t.Error("two layers from the same files differ")
	}
	tr := tar.NewReader(bytes.NewReader(a))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Typeflag != tar.TypeReg || h.Mode != 0o755 || h.Uid != uid || h.Gid != gid || !h.ModTime.Equal(at) {
			t.Errorf("%s: type %c mode %o owner %d:%d time %v", h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.ModTime)
		}
	}
	if len(names) != 2 || names[0] != "silentauth" || names[1] != "kubectl-silentauth" {
		t.Errorf("entries %v, want the two files in order", names)
	}
}
