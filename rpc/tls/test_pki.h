// Throwaway PKI for the TLS tests, made with the openssl CLI at test time
// in $TEST_TMPDIR: a CA, an unrelated CA, server certificates (good, wrong
// name, expired), a client certificate for mutual TLS. P-256 keys; short
// validity; nothing outlives the test run.
#ifndef CRPC_TLS_TEST_PKI_H
#define CRPC_TLS_TEST_PKI_H

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace crpc_tls_test {

inline std::string ReadFile(const std::string &path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

class Pki {
 public:
  // Generates everything once per process (idempotent).
  static const Pki &Get() {
    static Pki *pki = new Pki();
    return *pki;
  }

  std::string dir;
  bool ok = false;
  std::string Path(const std::string &name) const { return dir + "/" + name; }

 private:
  Pki() {
    const char *tmp = getenv("TEST_TMPDIR");
    dir = std::string(tmp ? tmp : "/tmp") + "/crpc-pki";
    std::string mk = "rm -rf '" + dir + "' && mkdir -p '" + dir + "'";
    ok = system(mk.c_str()) == 0 && MakeCa("ca", "crpc test CA") && MakeCa("other_ca", "crpc other CA") &&
         MakeLeaf("server", "ca", "localhost", "DNS:localhost,IP:127.0.0.1",
                  "serverAuth", 2) &&
         MakeLeaf("wrongname", "ca", "wrong.crpc.test", "DNS:wrong.crpc.test",
                  "serverAuth", 2) &&
         MakeLeaf("expired", "ca", "localhost", "DNS:localhost,IP:127.0.0.1",
                  "serverAuth", -1) &&
         MakeLeaf("client", "ca", "crpc-client", "DNS:client.crpc.test",
                  "clientAuth", 2) &&
         MakeLeaf("cnclient", "ca", "cn-only-client", "", "clientAuth", 2) &&
         MakeLeaf("stranger", "other_ca", "stranger", "DNS:stranger.test",
                  "clientAuth", 2);
  }

  bool Run(const std::string &cmd) {
    std::string full = "cd '" + dir + "' && (" + cmd + ") >/dev/null 2>&1";
    int rc = system(full.c_str());
    EXPECT_EQ(0, rc) << cmd;
    return rc == 0;
  }

  bool MakeCa(const std::string &name, const std::string &cn) {
    return Run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
               "-nodes -keyout " + name + ".key -out " + name + ".pem -days 2 "
               "-subj '/CN=" + cn + "' -addext basicConstraints=critical,CA:TRUE "
               "-addext keyUsage=critical,keyCertSign,cRLSign");
  }

  // days < 0: already expired.
  bool MakeLeaf(const std::string &name, const std::string &ca, const std::string &cn,
                const std::string &san, const std::string &eku, int days) {
    std::string ext = "basicConstraints=CA:FALSE\\nextendedKeyUsage=" + eku + "\\n";
    if (!san.empty()) ext += "subjectAltName=" + san + "\\n";
    return Run("printf '" + ext + "' > " + name + ".ext && "
               "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
               "-nodes -keyout " + name + ".key -out " + name + ".csr -subj '/CN=" + cn +
               "' && openssl x509 -req -in " + name + ".csr -CA " + ca + ".pem -CAkey " +
               ca + ".key -CAcreateserial -out " + name + ".pem -days " +
               std::to_string(days) + " -extfile " + name + ".ext");
  }
};

}  // namespace crpc_tls_test

#endif  // CRPC_TLS_TEST_PKI_H
