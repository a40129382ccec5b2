// Robustness across areas: the inputs that once crashed a reader under the fuzzers
// (tests/fixtures/fuzz-regressions/), every reader on missing files and absurd sizes, unwritable directories,
// a full disk, and a training run killed while it writes its checkpoint. Bad input to one area lives with that
// area (test_core, test_nn, test_loss_optim, test_data, test_train: namespace bad_input). The policy these
// tests pin down is written in docs/robustness.md.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ember/ember.hpp>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <new>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bad_input.hpp"

using namespace bad_input;

// ---- fuzz regressions ------------------------------------------------------------------------------------

TEST_CASE("every input that once crashed a fuzzer is now a clean error (or a clean load)") {
  const fs::path dir = fs::path(EMBER_FIXTURE_DIR) / "fuzz-regressions";
  REQUIRE(fs::is_directory(dir));
  int replayed = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string path = entry.path().string();
    const std::string name = entry.path().filename().string();
    const std::string target = name.substr(0, name.find('-'));
    CAPTURE(name);
    // Each file is named <reader>-<what it triggered>; the reader must throw ember's format_error (or load).
    try {
      if (target == "idx") {
        try {
          data::read_idx_images(path);
        } catch (const ember::format_error&) {
        }
        data::read_idx_labels(path);
      } else if (target == "csv") {
        data::load_sign_mnist(path);
      } else if (target == "safetensors") {
        io::read_safetensors(path);
      } else if (target == "image") {
        io::load_image(path);
      } else if (target == "onnx") {
        io::load_onnx(path);
      } else {
        FAIL_CHECK("unknown reader prefix in " << name);
      }
    } catch (const ember::format_error& e) {
      CHECK(contains(e.what(), path));
    }
    ++replayed;
  }
  CHECK(replayed >= 1);
}

TEST_CASE("a JPEG Huffman table with more than 256 codes is rejected before stb decodes it") {
  const std::string path =
      std::string(EMBER_FIXTURE_DIR) + "/fuzz-regressions/image-jpeg-dht-more-than-256-codes.jpg";
  const std::string msg = message_of<ember::format_error>([&] { io::load_image(path); });
  CHECK(contains(msg, path));
  CHECK(contains(msg, "Huffman table"));
  // The check does not get in the way of a valid JPEG.
  const Tensor ramp = io::load_image(std::string(EMBER_FIXTURE_DIR) + "/ramp_8x8.jpg");
  CHECK(ramp.shape() == Shape{1, 8, 8});
}

TEST_CASE("a PNG chunk declaring more bytes than the file holds is refused before stb allocates for it") {
  // 198 bytes: a 5 x 5 gray PNG whose second IDAT chunk declares 1,252,738,998 bytes; stb grew its buffer to
  // that length (2 GiB) before reading it.
  const std::string path = std::string(EMBER_FIXTURE_DIR) + "/fuzz-regressions/image-png-idat-length-2gib.png";
  const std::string msg = message_of<ember::format_error>([&] { io::load_image(path); });
  CHECK(contains(msg, path));
  CHECK(contains(msg, "IDAT chunk at byte"));
  CHECK(contains(msg, "declares 1252738998 bytes"));
}

TEST_CASE("a PNG header declaring more pixels than its IDAT data can inflate to is refused before decoding") {
  // 127 bytes: IHDR declares 7 x 14,286,852 RGBA pixels with 70 bytes of IDAT; stb allocated 414 MB for the
  // zlib output before reading a byte of it.
  const std::string path = std::string(EMBER_FIXTURE_DIR) + "/fuzz-regressions/image-png-ihdr-7x14286852.png";
  const std::string msg = message_of<ember::format_error>([&] { io::load_image(path); });
  CHECK(contains(msg, path));
  CHECK(contains(msg, "7 x 14286852 pixels need"));
  CHECK(contains(msg, "bytes of IDAT inflate to"));
}

TEST_CASE("a JPEG scan naming a Huffman table no DHT defined is refused before stb decodes through it") {
  // 315 bytes: a baseline JPEG whose scan names AC table 0, never defined. stb 2.27 allocates its decoder state
  // uninitialised and decoded through the garbage table (an out-of-bounds read, index -2139061201).
  const std::string path =
      std::string(EMBER_FIXTURE_DIR) + "/fuzz-regressions/image-jpeg-scan-uses-undefined-huffman-table.jpg";
  const std::string msg = message_of<ember::format_error>([&] { io::load_image(path); });
  CHECK(contains(msg, path));
  CHECK(contains(msg, "uses Huffman table 0 (AC), which no DHT before it defines"));
  // Likewise a quantisation table no DQT defined (this file also once drove stb's bit count below zero).
  CHECK(contains(message_of<ember::format_error>([&] {
                   io::load_image(std::string(EMBER_FIXTURE_DIR) + "/fuzz-regressions/image-jpeg-bit-count-below-zero.jpg");
                 }),
                 "uses quantisation table 0, which no DQT defines"));
}

TEST_CASE("a PNG whose first IDAT chunk is empty decodes, without stb's memcpy to a null buffer") {
  // 2 x 2 gray, pixel (y, x) = 10 y + x, with a zero-length IDAT before the one holding the data.
  const Tensor image =
      io::load_image(std::string(EMBER_FIXTURE_DIR) + "/fuzz-regressions/image-png-empty-idat-before-the-data.png");
  REQUIRE(image.shape() == Shape{1, 2, 2});
  CHECK(std::vector<float>(image.begin(), image.end()) == std::vector<float>{0, 1, 10, 11});
}

TEST_CASE("a safetensors header with a number too large for a double is a format error, not a crash") {
  const std::string path =
      std::string(EMBER_FIXTURE_DIR) + "/fuzz-regressions/safetensors-number-overflow-in-header.safetensors";
  const std::string msg = message_of<ember::format_error>([&] { io::read_safetensors(path); });
  CHECK(contains(msg, path));
  CHECK(contains(msg, "cannot be parsed"));
}

TEST_CASE("readers: missing files and directories are io_error naming the path") {
  const std::string missing = tmp_path("does-not-exist");
  CHECK(contains(message_of<ember::io_error>([&] { data::read_idx_images(missing); }), missing));
  CHECK(contains(message_of<ember::io_error>([&] { data::read_idx_labels(missing); }), missing));
  CHECK(contains(message_of<ember::io_error>([&] { data::load_sign_mnist(missing); }), missing));
  CHECK(contains(message_of<ember::io_error>([&] { data::load_mnist(missing, true); }), missing));
  CHECK(contains(message_of<ember::io_error>([&] { io::load_image(missing); }), missing));
  CHECK(contains(message_of<ember::io_error>([&] { io::read_safetensors(missing); }), missing));
  nn::Linear fc(2, 2);
  CHECK(contains(message_of<ember::io_error>([&] { io::load_checkpoint(fc, missing); }), missing));

  // A directory where a file is expected: an error naming it, not a giant allocation or a hang.
  const std::string dir = tmp_path("a-directory");
  fs::create_directories(dir);
  const std::size_t largest = largest_allocation_of([&] {
    CHECK_THROWS_AS(data::read_idx_images(dir), std::runtime_error);
    CHECK_THROWS_AS(data::load_sign_mnist(dir), std::runtime_error);
    CHECK_THROWS_AS(io::load_image(dir), std::runtime_error);
    CHECK(contains(message_of<std::runtime_error>([&] { io::read_safetensors(dir); }), dir));
    CHECK_THROWS_AS(io::load_checkpoint(fc, dir), std::runtime_error);
  });
  CHECK(largest < 4 * kMiB);
}

TEST_CASE("absurd sizes: headers that claim huge data are rejected before anything is allocated") {
  // IDX: 10^9 images of 28 x 28 claimed, 16 bytes present.
  Bytes idx;
  put_be32(idx, 0x00000803);
  put_be32(idx, 1000000000);
  put_be32(idx, 28);
  put_be32(idx, 28);
  idx.resize(idx.size() + 16, 7);
  const std::string idx_path = tmp_path("huge-claim-idx3");
  write_file(idx_path, idx);
  // IDX labels: 2^32 - 1 labels claimed.
  Bytes labels;
  put_be32(labels, 0x00000801);
  put_be32(labels, 0xFFFFFFFFu);
  labels.resize(labels.size() + 3, 1);
  const std::string labels_path = tmp_path("huge-claim-idx1");
  write_file(labels_path, labels);
  // safetensors: a 2^60-element tensor, and 2^62 x 4 elements (overflowing numel * dtype size).
  const std::string st1 = tmp_path("huge-claim-1.safetensors");
  write_file(st1, safetensors_file(R"({"x":{"dtype":"F32","shape":[1152921504606846976],"data_offsets":[0,4]}})",
                                   Bytes(4, 0)));
  const std::string st2 = tmp_path("huge-claim-2.safetensors");
  write_file(st2, safetensors_file(R"({"x":{"dtype":"F64","shape":[4611686018427387904,4],"data_offsets":[0,8]}})",
                                   Bytes(8, 0)));
  // safetensors: a header length of 2^60.
  Bytes st3_bytes = safetensors_file("{}");
  st3_bytes[7] = 0x10;
  const std::string st3 = tmp_path("huge-claim-3.safetensors");
  write_file(st3, st3_bytes);
  // CSV: a 64 x 64 header, then 200000 blank lines: the line ends alone would size a 3.2 GB tensor.
  std::string csv = "label";
  for (int i = 1; i <= 4096; ++i) csv += ",pixel" + std::to_string(i);
  csv += "\n" + std::string(200000, '\n');
  const std::string csv_path = tmp_path("huge-claim.csv");
  write_file(csv_path, csv);
  // PNG: a 65535 x 65535 gray image header with a few bytes of data (stb sizes its first buffer from it).
  const Bytes png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R', 0, 0, 0xff, 0xff,
                     0, 0, 0xff, 0xff, 8, 0, 0, 0, 0, 0x62, 0x5c, 0x3b, 0x35, 0, 0, 0, 0, 'I', 'E', 'N', 'D',
                     0xae, 0x42, 0x60, 0x82};
  const std::string png_path = tmp_path("huge-claim.png");
  write_file(png_path, png);

  const std::size_t largest = largest_allocation_of([&] {
    CHECK(contains(message_of<ember::format_error>([&] { data::read_idx_images(idx_path); }), "1000000000 x 28 x 28"));
    CHECK_THROWS_AS(data::read_idx_labels(labels_path), ember::format_error);
    CHECK(contains(message_of<ember::format_error>([&] { io::read_safetensors(st1); }), "'x'"));
    CHECK_THROWS_AS(io::read_safetensors(st2), ember::format_error);
    CHECK(contains(message_of<ember::format_error>([&] { io::read_safetensors(st3); }), "header length"));
    CHECK(contains(message_of<ember::format_error>([&] { data::load_sign_mnist(csv_path); }), "line 2"));
    CHECK_THROWS_AS(io::load_image(png_path), ember::format_error);
  });
  // The CSV file itself is read whole (a few hundred KB); nothing near the claimed sizes.
  CHECK(largest < 16 * kMiB);
}

// ---- writing ---------------------------------------------------------------------------------------------

namespace {

nn::Sequential small_net(std::uint64_t seed, std::int64_t in = 16, std::int64_t hidden = 8) {
  ember::Generator gen(seed);
  nn::Sequential net("Net", {});
  net.add("flatten", nn::Flatten());
  net.add("fc1", nn::Linear(in, hidden, true, gen));
  net.add("relu1", nn::ReLU());
  net.add("fc2", nn::Linear(hidden, 3, true, gen));
  return net;
}

std::vector<float> weights_of(nn::Sequential& net) {
  std::vector<float> all;
  for (auto& [name, p] : net.named_parameters()) all.insert(all.end(), p->value.begin(), p->value.end());
  return all;
}

std::vector<std::string> temporaries_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (contains(e.path().filename().string(), ".tmp-")) out.push_back(e.path().string());
  return out;
}

// Runs f in a child process and returns its exit status (f's return value, 99 on an exception, or the signal).
template <typename F>
int in_child(F&& f) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int code = 99;
    try {
      code = f();
    } catch (...) {
    }
    _exit(code);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

TEST_CASE("unwritable destinations are io_error naming the path; nothing is left behind") {
  auto net = small_net(11);
  const std::string file = tmp_path("plain-file");
  write_file(file, std::string("x"));
  const std::string under_file = file + "/model.safetensors";  // a path through a regular file: ENOTDIR
  CHECK(contains(message_of<ember::io_error>([&] { io::save_checkpoint(net, under_file); }), under_file));
  const std::string missing_dir = tmp_path("no-such-dir") + "/model.safetensors";
  CHECK(contains(message_of<ember::io_error>([&] { io::save_checkpoint(net, missing_dir); }), missing_dir));
  CHECK(contains(message_of<ember::io_error>([&] { io::save_png(missing_dir + ".png", Tensor({1, 2, 2})); }),
                 missing_dir));
  // A directory as the target: the rename fails, the temporary is removed.
  const std::string dir = tmp_path("target-is-a-dir");
  fs::create_directories(dir);
  fs::create_directories(dir + "/inner");
  CHECK_THROWS_AS(io::save_checkpoint(net, dir), ember::io_error);
  CHECK_THROWS_AS(io::save_png(dir, Tensor({1, 2, 2})), ember::io_error);
  CHECK(temporaries_in(tmp_path("")).empty());
}

TEST_CASE("a disk that fills up mid-write: io_error, the previous checkpoint and PNG stay intact") {
  const std::string dir = tmp_path("full-disk");
  fs::create_directories(dir);
  const std::string ckpt = dir + "/model.safetensors";
  const std::string png = dir + "/grid.png";
  auto small = small_net(12);
  io::save_checkpoint(small, ckpt, {{"generation", "old"}});
  Tensor img({1, 64, 64});
  for (std::int64_t i = 0; i < img.numel(); ++i) img[i] = static_cast<float>((i * 37) % 256);
  io::save_png(png, Tensor({1, 2, 2}, 50.0f));
  const Bytes old_ckpt = read_file(ckpt), old_png = read_file(png);

  // In a child limited to 64 KB per file (RLIMIT_FSIZE: writes beyond it fail with EFBIG, as on a full disk),
  // write a ~600 KB checkpoint and a PNG larger than the limit over the old ones.
  const int status = in_child([&] {
    std::signal(SIGXFSZ, SIG_IGN);
    rlimit limit{64 * 1024, 64 * 1024};
    if (setrlimit(RLIMIT_FSIZE, &limit) != 0) return 2;
    auto big = small_net(13, 16, 9000);
    int failures = 0;
    try {
      io::save_checkpoint(big, ckpt, {{"generation", "new"}});
    } catch (const ember::io_error& e) {
      failures += contains(e.what(), ckpt);
    }
    Tensor noise({3, 512, 512});
    ember::Generator gen(30);
    for (auto& v : noise) v = static_cast<float>(gen.randint(256));  // incompressible: a ~780 KB PNG
    try {
      io::save_png(png, noise);
    } catch (const ember::io_error& e) {
      failures += contains(e.what(), png);
    }
    return failures == 2 ? 0 : 1;
  });
  CHECK(status == 0);
  CHECK(read_file(ckpt) == old_ckpt);
  CHECK(read_file(png) == old_png);
  CHECK(temporaries_in(dir).empty());
  auto loaded = small_net(14);
  CHECK(io::load_checkpoint(loaded, ckpt).at("generation") == "old");
  CHECK(weights_of(loaded) == weights_of(small));

  // /dev/full as a log stream: writes fail with ENOSPC; the log is best effort and training goes on.
  std::ofstream full("/dev/full");
  if (full.is_open()) {
    data::Dataset ds;
    ds.images = random_tensor({8, 1, 4, 4}, 15);
    ds.labels = {0, 1, 2, 0, 1, 2, 0, 1};
    ds.num_classes = 3;
    data::DataLoader loader(ds, {4});
    nn::CrossEntropyLoss loss;
    ember::optim::SGD opt(small.parameters(), {0.01f});
    train::FitOptions opts;
    opts.epochs = 1;
    opts.log = &full;
    opts.progress = train::ProgressMode::off;
    CHECK(train::fit(small, loss, opt, loader, loader, opts).epochs.size() == 1);
  }
}

TEST_CASE("a training run killed by SIGKILL or SIGTERM leaves its last checkpoint complete and resumable") {
  const std::string dir = tmp_path("killed");
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string last = dir + "/last.safetensors";
  // 256 inputs -> 512 hidden: a ~1 MB checkpoint with the momentum buffers, so a kill often lands mid-write.
  data::Dataset ds;
  ds.images = random_tensor({32, 1, 16, 16}, 20);
  for (std::int64_t i = 0; i < 32; ++i) ds.labels.push_back(i % 3);
  ds.num_classes = 3;

  // Per epoch the child reports (epoch, checksum of the weights it saved) through a pipe, after the save.
  struct Report {
    std::int64_t epoch;
    double checksum;
  };
  auto checksum = [](nn::Sequential& net) {
    double s = 0;
    std::int64_t k = 0;
    for (float v : weights_of(net)) s += static_cast<double>(v) * static_cast<double>(++k % 7 + 1);
    return s;
  };

  const int rounds = 6;
  int mid_write_kills = 0;
  for (int round = 0; round < rounds; ++round) {
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    std::fflush(nullptr);
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      close(fds[0]);
      std::signal(SIGTERM, SIG_DFL);  // doctest's crash handler would report the kill as a test failure
      // The parent's OpenMP pool does not exist in the child: stay on one thread.
      ember::set_num_threads(1);
      try {
        auto net = small_net(21, 256, 512);
        nn::CrossEntropyLoss loss;
        ember::optim::SGD opt(net.parameters(), {0.01f, 0.9f});
        data::DataLoader loader(ds, {8, true, false, 5});
        train::FitOptions opts;
        opts.epochs = 100000;
        opts.last_checkpoint_path = last;
        opts.progress = train::ProgressMode::off;
        if (fs::exists(last)) opts.resume_from(io::load_checkpoint(net, last, &opt));
        opts.on_epoch = [&](const train::EpochStats& e) {
          const Report r{e.epoch, checksum(net)};
          if (write(fds[1], &r, sizeof r) != static_cast<ssize_t>(sizeof r)) _exit(3);
        };
        train::fit(net, loss, opt, loader, loader, opts);
      } catch (...) {
        _exit(4);
      }
      _exit(0);
    }
    close(fds[1]);
    // Wait for a few epochs, then kill at a moment that varies from round to round.
    // The kill lands at (round + 0.5) / rounds of an epoch after a report, so the rounds sweep the epoch
    // (training, validation, then the save at its end) instead of depending on luck.
    std::vector<Report> reports;
    Report r{};
    std::chrono::steady_clock::time_point times[4];
    while (reports.size() < 4 && read(fds[0], &r, sizeof r) == static_cast<ssize_t>(sizeof r)) {
      times[reports.size()] = std::chrono::steady_clock::now();
      reports.push_back(r);
    }
    REQUIRE_MESSAGE(reports.size() == 4, "the child stopped early");
    const auto period = (times[3] - times[1]) / 2;
    std::this_thread::sleep_for(period * (2 * round + 1) / (2 * rounds));
    const int sig = round % 2 ? SIGTERM : SIGKILL;
    kill(pid, sig);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK((WIFSIGNALED(status) && WTERMSIG(status) == sig));
    while (read(fds[0], &r, sizeof r) == static_cast<ssize_t>(sizeof r)) reports.push_back(r);
    close(fds[0]);
    if (!temporaries_in(dir).empty()) ++mid_write_kills;
    for (const auto& t : temporaries_in(dir)) fs::remove(t);  // a killed writer cannot clean up; harmless

    // The checkpoint is complete: it loads (load_checkpoint checks every size and offset), it is either the
    // last epoch the child reported or the one it was saving, and its weights are those of that epoch.
    auto net = small_net(22, 256, 512);
    nn::CrossEntropyLoss loss;
    ember::optim::SGD opt(net.parameters(), {0.01f, 0.9f});
    std::map<std::string, std::string> meta;
    REQUIRE_NOTHROW(meta = io::load_checkpoint(net, last, &opt));
    const std::int64_t epoch = std::stoll(meta.at("epoch"));
    const std::int64_t reported = reports.back().epoch;
    CAPTURE(round);
    CHECK((epoch == reported || epoch == reported + 1));
    if (epoch == reported) CHECK(checksum(net) == reports.back().checksum);
    // ... and it resumes: one more epoch trains from it.
    data::DataLoader loader(ds, {8, true, false, 5});
    train::FitOptions opts;
    opts.progress = train::ProgressMode::off;
    opts.resume_from(meta);
    opts.epochs = epoch + 1;
    const train::History h = train::fit(net, loss, opt, loader, loader, opts);
    REQUIRE(h.epochs.size() == 1);
    CHECK(h.epochs[0].epoch == epoch + 1);
  }
  MESSAGE(mid_write_kills << " of " << rounds << " kills landed while a checkpoint was being written");
}
