#include "http/base64.h"

#include <openssl/evp.h>

namespace porthole::http {
namespace {

bool is_base64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

}  // namespace

std::string base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');  // EVP_EncodeBlock writes a NUL
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::optional<std::string> from_base64(std::string_view text) {
  // Checked whole first: OpenSSL's decoder skips blanks and accepts '=' early.
  if (text.size() % 4 != 0) {
    return std::nullopt;
  }
  std::size_t data = text.size();
  for (int i = 0; i < 2 && data > 0 && text[data - 1] == '='; ++i) {
    --data;
  }
  for (std::size_t i = 0; i < data; ++i) {
    if (!is_base64_char(text[i])) {
      return std::nullopt;
    }
  }
  std::string out(text.size() / 4 * 3 + 1, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) {
    return std::nullopt;
  }
  // EVP_DecodeBlock counts each '=' as a zero byte.
  out.resize(static_cast<std::size_t>(n) - (text.size() - data));
  return out;
}

}  // namespace porthole::http
