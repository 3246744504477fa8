package config

import "errors"

// Load reads the YAML file at path on top of Default and returns the result
// without validating it, so that tests can look at a file's decoding alone:
// an empty file yields Default; unknown fields, repeated keys and values of
// the wrong type are errors naming the field or the line, all at once.
func Load(path string) (Config, error) {
	c := Default()
	problems, err := loadInto(&c, path)
	if err == nil {
		err = errors.Join(problems...)
	}
	if err != nil {
		return Config{}, err
	}
	return c, nil
}
