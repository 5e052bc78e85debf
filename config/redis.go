package config

import (
	"errors"
	"fmt"
	"net"
)

// RedisConfig is the chat platform's Redis (the token blacklist lives there).
type RedisConfig struct {
	// Addr is host:port of a standalone Redis (or a proxy in front of one).
	Addr string `yaml:"addr"`
	// Password for AUTH; empty: no AUTH.
	Password string `yaml:"password"`
	// DB is the logical database number.
	DB int `yaml:"db"`
}

// WithDefaults fills unset fields.
func (c RedisConfig) WithDefaults() RedisConfig {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:6379"
	}
	return c
}

// Validate names the first bad key, relative to the redis section.
func (c RedisConfig) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("addr: %q is not host:port", c.Addr)
	}
	if c.DB < 0 || c.DB > 15 {
		return errors.New("db: must be 0..15")
	}
	return nil
}
