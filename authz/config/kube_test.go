package config

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestSecretNamespace(t *testing.T) {
	file := func(content string, err error) func(string) ([]byte, error) {
		return func(path string) ([]byte, error) {
			if path != ServiceAccountNamespaceFile {
				t.Errorf("read %s", path)
			}
			return []byte(content), err
		}
	}
	missing := file("", fs.ErrNotExist)
	tests := []struct {
		name     string
		field    string
		env      map[string]string
		readFile func(string) ([]byte, error)
		want     string
		wantErr  string
	}{
		{"field wins", "auth", map[string]string{"POD_NAMESPACE": "pod"}, file("sa", nil), "auth", ""},
		{"POD_NAMESPACE", "", map[string]string{"POD_NAMESPACE": " pod\n"}, file("sa", nil), "pod", ""},
		{"ServiceAccount file", "", nil, file("sa\n", nil), "sa", ""},
		{"outside a pod", "", nil, missing, "", "set keys.secret.namespace, SILENTAUTH_KEYS_SECRET_NAMESPACE or POD_NAMESPACE"},
		{"unreadable file", "", nil, file("", fs.ErrPermission), "", "permission denied"},
		{"bad POD_NAMESPACE", "", map[string]string{"POD_NAMESPACE": "Not_A_Label"}, missing, "", `POD_NAMESPACE holds "Not_A_Label"`},
		{"nothing injected", "", nil, nil, "", "pod's namespace is unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := Keys{Secret: SecretRef{Name: "keys", Namespace: tt.field}}
			var getenv func(string) string
			if tt.env != nil {
				getenv = mapEnv(tt.env)
			}
			got, err := k.SecretNamespace(getenv, tt.readFile)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrNoNamespace) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("SecretNamespace() = %q, %v, want %q", got, err, tt.want)
			}
		})
	}
}

func TestIsDNS(t *testing.T) {
	for s, want := range map[string][2]bool{ // label, subdomain
		"a": {true, true}, "auth-1": {true, true}, "a.b": {false, true}, strings.Repeat("a", 63): {true, true},
		strings.Repeat("a", 64): {false, true}, "": {false, false}, "-a": {false, false}, "a-": {false, false},
		"A": {false, false}, "a_b": {false, false}, "a..b": {false, false}, ".a": {false, false}, "a.": {false, false},
	} {
		if got := [2]bool{isDNSLabel(s), isDNSSubdomain(s)}; got != want {
			t.Errorf("%q: label, subdomain = %v, want %v", s, got, want)
		}
	}
}
