package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"

	"github.com/spf13/cobra"
)

func newKeygenCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "keygen",
		Short: "Print a new base64 gossip encryption key (32 bytes, AES-256)",
		Long: `Print a new random gossip encryption key. Write it to the file named by
cluster.encrypt_key_file on every host (mode 0600, root), e.g.:

  drover keygen | sudo install -m 0600 /dev/stdin /etc/drover/gossip.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			key := make([]byte, 32)
			if _, err := rand.Read(key); err != nil {
				return fmt.Errorf("read random bytes: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), base64.StdEncoding.EncodeToString(key))
			return nil
		},
	}
}
