// Small valid images and documents for tests: what a signature pad, a camera or a scanner
// would give, the smallest that the attachment rules accept.
#pragma once

#include <cstddef>
#include <random>
#include <string>

namespace otsync::testing {

/// A valid 1×1 PNG, as a signature pad would give.
inline const std::string& tiny_png() {
    static const std::string png(
        "\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00\x00\x00\x01\x00\x00"
        "\x00\x01"
        "\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\x0d\x49\x44\x41\x54\x78\x9c\x63\x60\x60"
        "\x60\xf8"
        "\x0f\x00\x01\x04\x01\x00\x5f\xe5\xc3\x4b\x00\x00\x00\x00\x49\x45\x4e\x44\xae\x42\x60\x82",
        70);
    return png;
}

/// `n` bytes drawn from `seed` (a photo's or a scan's body that does not compress).
inline std::string random_bytes(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::string out(n, '\0');
    for (auto& c : out) {
        c = static_cast<char>(rng() & 0xff);
    }
    return out;
}

/// tiny_png with a tEXt chunk holding `text` before its IEND: still a whole PNG.
inline std::string png_with_text(const std::string& text) {
    const std::string& png = tiny_png();
    std::string chunk;
    for (int i = 3; i >= 0; --i) {
        chunk.push_back(static_cast<char>((text.size() >> (8 * i)) & 0xff));
    }
    chunk += "tEXt" + text + std::string(4, '\0'); // the CRC is not what tells a PNG
    return png.substr(0, png.size() - 12) + chunk + png.substr(png.size() - 12);
}

/// A JPEG's frame (start of image, a JFIF header, end of image) around `filler` bytes.
inline std::string jpeg_of(const std::string& filler) {
    return std::string("\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00", 20) +
           filler + std::string("\xff\xd9", 2);
}

/// A one-page PDF's outline (header, a body, the end-of-file marker).
inline std::string pdf_of(const std::string& body) {
    return "%PDF-1.4\n" + body + "\ntrailer\n<<>>\n%%EOF\n";
}

} // namespace otsync::testing
