// Checkpoints: round trips (float, double, optimiser state), atomic writes, every corrupt-file path (each
// leaves the module exactly as it was), and a round trip through PyTorch with tools/checkpoint_to_torch.py.
#include <doctest/doctest.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ember/io/checkpoint.hpp>
#include <ember/loss/cross_entropy.hpp>
#include <ember/nn/nn.hpp>
#include <ember/optim/adam.hpp>
#include <ember/optim/sgd.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "scratch.hpp"

namespace fs = std::filesystem;
using ember::Tensor;
using ember::TensorT;

namespace {

std::string tmp_path(const std::string& name) { return scratch::path("checkpoint", name); }
using scratch::read_file;
using scratch::write_file;

// conv -> batchnorm -> relu -> flatten -> linear: parameters and every kind of buffer.
template <typename T>
ember::nn::SequentialT<T> make_net(std::uint64_t seed) {
  ember::Generator gen(seed);
  ember::nn::SequentialT<T> net("CNNNet", {});
  net.add("conv1", ember::nn::Conv2dT<T>(1, 2, 3, 1, 0, 1, 1, true, gen));
  net.add("batchnorm1", ember::nn::BatchNorm2dT<T>(2));
  net.add("relu1", ember::nn::ReLUT<T>());
  net.add("flatten", ember::nn::FlattenT<T>());
  net.add("fc1", ember::nn::LinearT<T>(2 * 4 * 4, 3, true, gen));
  return net;
}

template <typename T>
TensorT<T> random_input(std::uint64_t seed, std::int64_t n = 4) {
  ember::Generator gen(seed);
  TensorT<T> x({n, 1, 6, 6});
  for (auto& v : x) v = static_cast<T>(gen.normal());
  return x;
}

// One SGD step with momentum, so that the batchnorm buffers and the momentum buffers hold something.
template <typename T>
void train_step(ember::nn::SequentialT<T>& net, ember::optim::SGDT<T>& opt, std::uint64_t seed) {
  ember::nn::CrossEntropyLossT<T> loss;
  opt.zero_grad();
  TensorT<T> logits;
  net.forward_into(random_input<T>(seed), logits);
  loss.forward(logits, {0, 1, 2, 1});
  TensorT<T> g;
  loss.backward_into(g);
  net.backward_into(g, nullptr);
  opt.step();
}

template <typename T>
std::map<std::string, TensorT<T>> snapshot(ember::nn::ModuleT<T>& m) {
  std::map<std::string, TensorT<T>> out;
  for (auto& [n, p] : m.named_parameters()) out[n] = p->value;
  for (auto& [n, b] : m.named_buffers()) out[n] = *b;
  return out;
}

// A file from a header text and a data section, with the length prefix computed (or forced).
void write_raw(const std::string& path, const std::string& header, const std::vector<unsigned char>& data,
               std::uint64_t forced_len = 0) {
  std::vector<unsigned char> bytes(8);
  const std::uint64_t n = forced_len ? forced_len : header.size();
  for (int i = 0; i < 8; ++i) bytes[static_cast<std::size_t>(i)] = static_cast<unsigned char>(n >> (8 * i));
  bytes.insert(bytes.end(), header.begin(), header.end());
  bytes.insert(bytes.end(), data.begin(), data.end());
  write_file(path, bytes);
}

// A valid checkpoint split into its JSON header and data section, to corrupt one thing at a time.
struct Parts {
  nlohmann::json header;
  std::vector<unsigned char> data;
};
Parts split(const std::string& path) {
  const auto bytes = read_file(path);
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<std::uint64_t>(bytes[static_cast<std::size_t>(i)]) << (8 * i);
  Parts p;
  p.header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  p.data.assign(bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n), bytes.end());
  return p;
}
// Rebuilds a consistent file from tensors given as (dtype, shape, bytes), in the given order.
struct Raw {
  std::string name, dtype;
  std::vector<std::int64_t> shape;
  std::vector<unsigned char> bytes;
};
std::vector<Raw> tensors_of(const Parts& p) {
  std::vector<Raw> out;
  for (auto it = p.header.begin(); it != p.header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const auto b = it.value()["data_offsets"][0].get<std::size_t>();
    const auto e = it.value()["data_offsets"][1].get<std::size_t>();
    out.push_back({it.key(), it.value()["dtype"].get<std::string>(),
                   it.value()["shape"].get<std::vector<std::int64_t>>(),
                   std::vector<unsigned char>(p.data.begin() + static_cast<std::ptrdiff_t>(b),
                                              p.data.begin() + static_cast<std::ptrdiff_t>(e))});
  }
  return out;
}
void write_tensors(const std::string& path, const std::vector<Raw>& tensors) {
  nlohmann::json h = nlohmann::json::object();
  std::vector<unsigned char> data;
  for (const auto& t : tensors) {
    h[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data.insert(data.end(), t.bytes.begin(), t.bytes.end());
  }
  write_raw(path, h.dump(), data);
}

template <typename T>
bool same(const std::map<std::string, TensorT<T>>& a, const std::map<std::string, TensorT<T>>& b) {
  return a == b;
}

}  // namespace

TEST_CASE("a float checkpoint round-trips parameters, buffers, metadata and momentum buffers") {
  auto net = make_net<float>(1);
  ember::optim::SGD opt(net.parameters(), {0.1, 0.9});
  train_step(net, opt, 11);
  train_step(net, opt, 12);
  const std::string path = tmp_path("roundtrip.safetensors");
  ember::io::save_checkpoint(net, path, {{"epoch", "2"}, {"val_loss", "0.25"}}, &opt);

  auto fresh = make_net<float>(2);
  ember::optim::SGD fresh_opt(fresh.parameters(), {0.1, 0.9});
  CHECK_FALSE(same(snapshot(fresh), snapshot(net)));
  const auto meta = ember::io::load_checkpoint(fresh, path, &fresh_opt);
  CHECK(same(snapshot(fresh), snapshot(net)));
  CHECK(meta.at("epoch") == "2");
  CHECK(meta.at("val_loss") == "0.25");
  CHECK(meta.at("ember_version") == ember::version());
  CHECK(meta.at("model") == net.repr());
  CHECK(meta.at("optimizer").find("momentum=0.9") != std::string::npos);
  for (std::size_t i = 0; i < opt.params().size(); ++i) {
    REQUIRE(fresh_opt.state().has_momentum_buffer[i]);
    CHECK(fresh_opt.state().momentum_buffers[i] == opt.state().momentum_buffers[i]);
  }
  // The same next step on both gives the same parameters.
  train_step(net, opt, 13);
  train_step(fresh, fresh_opt, 13);
  CHECK(same(snapshot(fresh), snapshot(net)));

  // The file's layout: PyTorch's names, F32 weights, num_batches_tracked as a 0-d I64.
  const auto file = ember::io::read_safetensors(path);
  std::map<std::string, ember::io::SafetensorsEntry> by_name;
  for (const auto& e : file.tensors) by_name[e.name] = e;
  CHECK(by_name.at("conv1.weight").dtype == "F32");
  CHECK(by_name.at("conv1.weight").shape == ember::Shape{2, 1, 3, 3});
  CHECK(by_name.at("batchnorm1.num_batches_tracked").dtype == "I64");
  CHECK(by_name.at("batchnorm1.num_batches_tracked").shape.empty());
  CHECK(by_name.count("optimizer.momentum_buffer.fc1.weight") == 1);
  CHECK(file.data_start % 8 == 0);

  // Loading without an optimiser ignores the optimiser's entries (inference from a training checkpoint).
  auto infer = make_net<float>(3);
  CHECK_NOTHROW(ember::io::load_checkpoint(infer, path));
  CHECK(same(snapshot(infer), snapshot(fresh)) == false);  // fresh took one more step
}

TEST_CASE("a double model writes F64 and loads F32 files losslessly; F64 into float only when exact") {
  auto net = make_net<double>(4);
  const std::string path = tmp_path("double.safetensors");
  ember::io::save_checkpoint(net, path);
  for (const auto& e : ember::io::read_safetensors(path).tensors)
    CHECK(e.dtype == (e.name.find("num_batches_tracked") != std::string::npos ? "I64" : "F64"));
  auto back = make_net<double>(5);
  ember::io::load_checkpoint(back, path);
  CHECK(same(snapshot(back), snapshot(net)));

  // float file -> double model: exact.
  auto fnet = make_net<float>(6);
  const std::string fpath = tmp_path("float_for_double.safetensors");
  ember::io::save_checkpoint(fnet, fpath);
  ember::io::load_checkpoint(back, fpath);
  CHECK(back.named_parameters()[0].second->value == fnet.named_parameters()[0].second->value.cast<double>());

  // double file -> float model: refused when a value would be rounded, and the model is untouched.
  const auto before = snapshot(fnet);
  CHECK_THROWS_AS(ember::io::load_checkpoint(fnet, path), ember::format_error);
  CHECK(same(snapshot(fnet), before));
  // ... accepted when every value is exactly a float.
  auto exact = make_net<double>(7);
  for (auto& [n, p] : exact.named_parameters())
    for (auto& v : p->value) v = static_cast<double>(static_cast<float>(v));
  ember::io::save_checkpoint(exact, path);
  ember::io::load_checkpoint(fnet, path);
  CHECK(fnet.named_parameters()[0].second->value == exact.named_parameters()[0].second->value.cast<float>());
}

TEST_CASE("writes are atomic: a failed write leaves the previous file intact and no temporary behind") {
  auto net = make_net<float>(8);
  const std::string dir = tmp_path("atomic");
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = dir + "/model.safetensors";
  ember::io::save_checkpoint(net, path, {{"epoch", "1"}});
  const auto good = read_file(path);

  auto other = make_net<float>(9);
  SUBCASE("the file size limit is hit in the middle of the write") {
    std::signal(SIGXFSZ, SIG_IGN);
    rlimit old{};
    getrlimit(RLIMIT_FSIZE, &old);
    rlimit small = old;
    small.rlim_cur = good.size() - 64;  // the header fits, the end of the data does not
    setrlimit(RLIMIT_FSIZE, &small);
    bool threw = false;
    try {
      ember::io::save_checkpoint(other, path, {{"epoch", "2"}});
    } catch (const ember::io_error& e) {
      threw = true;
      CHECK(std::string(e.what()).find(path) != std::string::npos);
      CHECK(std::string(e.what()).find("write failed") != std::string::npos);
    }
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK(threw);
  }
  SUBCASE("the target is a directory, so the final rename fails") {
    const std::string target = dir + "/is_a_dir";
    fs::create_directories(target + "/sub");
    CHECK_THROWS_AS(ember::io::save_checkpoint(other, target), ember::io_error);
    CHECK(fs::is_directory(target));
  }
  SUBCASE("the directory does not exist") {
    CHECK_THROWS_AS(ember::io::save_checkpoint(other, dir + "/missing/model.safetensors"), ember::io_error);
  }
  SUBCASE("the directory is read-only (only meaningful when not running as root)") {
    fs::permissions(dir, fs::perms::owner_read | fs::perms::owner_exec);
    if (::access(dir.c_str(), W_OK) != 0) {
      CHECK_THROWS_AS(ember::io::save_checkpoint(other, path, {{"epoch", "2"}}), ember::io_error);
    }
    fs::permissions(dir, fs::perms::owner_all);
  }
  CHECK(read_file(path) == good);
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir)) entries += e.path().filename().string().find(".tmp-") != std::string::npos;
  CHECK(entries == 0);
  auto check = make_net<float>(10);
  CHECK(ember::io::load_checkpoint(check, path).at("epoch") == "1");
  CHECK(same(snapshot(check), snapshot(net)));
}

TEST_CASE("every corrupt file throws format_error naming the file and the problem, and changes nothing") {
  auto source = make_net<float>(20);
  ember::optim::SGD source_opt(source.parameters(), {0.1, 0.9});
  train_step(source, source_opt, 21);
  const std::string good = tmp_path("good.safetensors");
  ember::io::save_checkpoint(source, good, {}, &source_opt);
  const Parts parts = split(good);
  const std::vector<Raw> tensors = tensors_of(parts);
  const std::string bad = tmp_path("bad.safetensors");

  auto target = make_net<float>(22);
  ember::optim::SGD target_opt(target.parameters(), {0.1, 0.9});
  train_step(target, target_opt, 23);
  const auto before = snapshot(target);
  const auto momentum_before = target_opt.state().momentum_buffers;

  auto expect_rejected = [&](const std::string& what, const std::string& needle) {
    CAPTURE(what);
    bool threw = false;
    try {
      ember::io::load_checkpoint(target, bad, &target_opt);
    } catch (const ember::format_error& e) {
      threw = true;
      const std::string msg = e.what();
      CAPTURE(msg);
      CHECK(msg.find(bad) != std::string::npos);
      CHECK(msg.find(needle) != std::string::npos);
    }
    CHECK(threw);
    CHECK(same(snapshot(target), before));
    CHECK(target_opt.state().momentum_buffers == momentum_before);
  };
  auto with = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json h = parts.header;
    edit(h);
    write_raw(bad, h.dump(), parts.data);
  };
  auto tensors_with = [&](const std::function<void(std::vector<Raw>&)>& edit) {
    std::vector<Raw> t = tensors;
    edit(t);
    write_tensors(bad, t);
  };

  write_file(bad, scratch::Bytes{1, 2, 3, 4, 5});
  expect_rejected("short file", "shorter than the 8-byte header length");
  write_raw(bad, parts.header.dump(), parts.data, 1ull << 40);
  expect_rejected("huge header length", "runs past the end");
  write_raw(bad, parts.header.dump(), {}, parts.header.dump().size() + 100);
  expect_rejected("header length past the end", "runs past the end");
  write_raw(bad, "{\"fc1.weight\": {\"dtype\": ", parts.data);
  expect_rejected("bad JSON", "not valid JSON at offset");
  write_raw(bad, "[1, 2, 3]", parts.data);
  expect_rejected("JSON array", "not a JSON object");
  with([](nlohmann::json& h) { h["fc1.weight"]["dtype"] = "F33"; });
  expect_rejected("unknown dtype", "unknown dtype 'F33'");
  tensors_with([](std::vector<Raw>& t) {
    for (auto& r : t)
      if (r.name == "fc1.bias") {
        r.dtype = "F16";
        r.bytes.resize(r.bytes.size() / 2);
      }
  });
  expect_rejected("a dtype ember does not load", "has dtype F16");
  tensors_with([](std::vector<Raw>& t) {
    for (auto& r : t)
      if (r.name == "fc1.weight") r.shape = {32, 3};
  });
  expect_rejected("transposed shape", "the model expects [3, 32]");
  with([](nlohmann::json& h) { h["fc1.weight"]["shape"] = {3, 33}; });
  expect_rejected("shape that does not match the byte count", "needs 396 bytes");
  with([](nlohmann::json& h) { h["fc1.weight"]["shape"] = {3, -32}; });
  expect_rejected("negative extent", "invalid extent");
  with([&](nlohmann::json& h) { h["fc1.bias"]["data_offsets"] = {parts.data.size() - 4, parts.data.size() + 8}; });
  expect_rejected("offsets past the data", "outside the");
  with([](nlohmann::json& h) { h["fc1.bias"]["data_offsets"] = {20, 8}; });
  expect_rejected("begin after end", "begin after end");
  with([](nlohmann::json& h) {
    h["batchnorm1.running_var"]["data_offsets"] = h["batchnorm1.running_mean"]["data_offsets"];
  });
  expect_rejected("overlapping tensors", "overlaps");
  write_raw(bad, parts.header.dump(), [&] {
    auto d = parts.data;
    d.resize(d.size() + 16);
    return d;
  }());
  expect_rejected("trailing bytes", "belong to no tensor");
  tensors_with([](std::vector<Raw>& t) {
    t.erase(std::remove_if(t.begin(), t.end(), [](const Raw& r) { return r.name == "batchnorm1.running_mean"; }),
            t.end());
  });
  expect_rejected("missing tensor", "missing tensors for the model: batchnorm1.running_mean");
  tensors_with([](std::vector<Raw>& t) { t.push_back({"fc9.weight", "F32", {1}, {0, 0, 128, 63}}); });
  expect_rejected("extra tensor", "the model does not have: fc9.weight");
  tensors_with([](std::vector<Raw>& t) {
    t.push_back({"optimizer.momentum_buffer.fc7.bias", "F32", {1}, {0, 0, 128, 63}});
  });
  expect_rejected("momentum buffer of an unknown parameter", "optimizer.momentum_buffer.fc7.bias");
  tensors_with([](std::vector<Raw>& t) {
    for (auto& r : t)
      if (r.name == "optimizer.momentum_buffer.fc1.bias") r.shape = {1, 3};
  });
  expect_rejected("momentum buffer of the wrong shape", "the model expects [3]");
  tensors_with([](std::vector<Raw>& t) {
    for (auto& r : t)
      if (r.name == "batchnorm1.num_batches_tracked") r.bytes = {1, 0, 0, 1, 0, 0, 0, 0};  // 2^24 + 1
  });
  expect_rejected("int64 value that float cannot hold", "not exactly representable");
  with([](nlohmann::json& h) { h["__metadata__"]["epoch"] = 3; });
  expect_rejected("metadata value that is not a string", "__metadata__ entry 'epoch'");
  with([](nlohmann::json& h) { h["fc1.bias"].erase("data_offsets"); });
  expect_rejected("no data_offsets", "data_offsets");

  // A file that cannot be opened is an io_error.
  CHECK_THROWS_AS(ember::io::load_checkpoint(target, tmp_path("does_not_exist.safetensors")), ember::io_error);
  // And the good file still loads.
  ember::io::load_checkpoint(target, good, &target_opt);
  CHECK(same(snapshot(target), snapshot(source)));
}

TEST_CASE("a checkpoint goes to PyTorch and back through tools/checkpoint_to_torch.py") {
  if (!scratch::prerequisite(std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0,
                             "/usr/bin/python3 has no torch (Debian: python3-torch)")) {
    return;
  }
  const std::string script = std::string(EMBER_FIXTURE_DIR) + "/../../tools/checkpoint_to_torch.py";
  auto net = make_net<float>(30);
  ember::optim::SGD opt(net.parameters(), {0.1, 0.9});
  train_step(net, opt, 31);
  const std::string ckpt = tmp_path("to_torch.safetensors");
  const std::string pt = tmp_path("to_torch.pt");
  const std::string back = tmp_path("from_torch.safetensors");
  ember::io::save_checkpoint(net, ckpt, {{"epoch", "1"}}, &opt);
  REQUIRE(std::system(("/usr/bin/python3 " + script + " to-torch " + ckpt + " " + pt + " 2>/dev/null").c_str()) == 0);
  // The state_dict loads into the same model written in PyTorch, with num_batches_tracked as int64.
  const std::string check =
      "import torch, collections\n"
      "sd = torch.load('" + pt + "')\n"
      "assert sd['batchnorm1.num_batches_tracked'].dtype == torch.int64, sd['batchnorm1.num_batches_tracked']\n"
      "assert int(sd['batchnorm1.num_batches_tracked']) == 1\n"
      "assert sd['conv1.weight'].dtype == torch.float32\n"
      "assert not any(k.startswith('optimizer.') for k in sd)\n"
      "m = torch.nn.Sequential(collections.OrderedDict([('conv1', torch.nn.Conv2d(1, 2, 3)),\n"
      "    ('batchnorm1', torch.nn.BatchNorm2d(2)), ('relu1', torch.nn.ReLU()), ('flatten', torch.nn.Flatten()),\n"
      "    ('fc1', torch.nn.Linear(32, 3))]))\n"
      "m.load_state_dict(sd, strict=True)\n";
  const std::string check_path = tmp_path("check_state_dict.py");
  std::ofstream(check_path) << check;
  CHECK(std::system(("/usr/bin/python3 " + check_path).c_str()) == 0);
  // --meta repeated; the metadata the ember file had comes back through the .pt (its ember_metadata).
  REQUIRE(std::system(("/usr/bin/python3 " + script + " from-torch " + pt + " " + back +
                       " --meta note=a --meta epoch=2 2>/dev/null").c_str()) == 0);
  auto fresh = make_net<float>(32);
  const auto meta = ember::io::load_checkpoint(fresh, back);
  CHECK(same(snapshot(fresh), snapshot(net)));
  CHECK(meta.at("note") == "a");
  CHECK(meta.at("epoch") == "2");  // --meta wins over the kept value "1"
  CHECK(meta.count("ember_version") == 1);
  CHECK(meta.at("format") == "pt");
  CHECK(std::system(("/usr/bin/python3 " + script + " from-torch " + pt + " " + back + " --meta novalue 2>/dev/null").c_str()) != 0);
}

// ------------------------------------------------------------------------------------------ the first week

TEST_CASE("loading with an optimiser a file that holds no optimiser state is an error naming the file") {
  auto net = make_net<float>(81);
  ember::optim::SGD opt(net.parameters(), {0.1, 0.9});
  train_step(net, opt, 82);
  const std::string path = tmp_path("model_only.safetensors");
  ember::io::save_checkpoint(net, path);  // a model-only (best) checkpoint
  auto other = make_net<float>(83);
  ember::optim::SGD fresh(other.parameters(), {0.1, 0.9});
  const auto before = snapshot(other);
  const std::string msg = scratch::message_of<ember::format_error>([&] { ember::io::load_checkpoint(other, path, &fresh); });
  CHECK(scratch::contains(msg, path + ": holds no optimiser state"));
  CHECK(scratch::contains(msg, "load with load_checkpoint(model, path) and start the optimiser fresh"));
  CHECK(snapshot(other) == before);
  CHECK(fresh.state_tensors().empty());
  ember::io::load_checkpoint(other, path);  // the model alone loads
  CHECK(snapshot(other) == snapshot(net));
  // An optimiser without state yet (SGD without momentum) still marks the file as carrying its state.
  ember::optim::SGD plain(net.parameters(), {0.1});
  ember::io::save_checkpoint(net, path, {}, &plain);
  ember::optim::SGD plain2(other.parameters(), {0.1});
  ember::io::load_checkpoint(other, path, &plain2);
}

TEST_CASE("another optimiser's state: the error names the optimiser the file holds and the one given") {
  auto net = make_net<float>(84);
  ember::optim::AdamW adamw(net.parameters(), {1e-3});
  ember::optim::SGD sgd_for_steps(net.parameters(), {0.1, 0.9});
  train_step(net, sgd_for_steps, 85);
  adamw.step();
  const std::string path = tmp_path("adamw.safetensors");
  ember::io::save_checkpoint(net, path, {}, &adamw);
  auto other = make_net<float>(86);
  ember::optim::SGD sgd(other.parameters(), {0.1, 0.9});
  const auto before = snapshot(other);
  const std::string msg = scratch::message_of<ember::format_error>([&] { ember::io::load_checkpoint(other, path, &sgd); });
  CHECK(scratch::contains(msg, path + ": this checkpoint holds AdamW's state, the optimiser given is SGD"));
  CHECK_FALSE(scratch::contains(msg, "optimizer.exp_avg"));  // not a list of names
  CHECK(snapshot(other) == before);
  ember::optim::AdamW adamw2(other.parameters(), {1e-3});
  ember::io::load_checkpoint(other, path, &adamw2);
  CHECK(adamw2.state_tensors().size() == adamw.state_tensors().size());
}

TEST_CASE("a PNG, a JPEG, torch.save's zip or pickle read as a checkpoint: named, with how to convert") {
  auto net = make_net<float>(87);
  const std::vector<std::pair<std::string, std::string>> files = {
      {std::string("\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01", 20), "a PNG image"},
      {std::string("\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01", 16), "a JPEG image"},
      {std::string("PK\x03\x04\x14\0\0\0\0\0\0\0\0\0archive/data.pkl", 30), "a zip archive (torch.save's .pt/.pth format)"},
      {std::string("\x80\x02}q\x00(X\x01\x00\x00\x00" "aq\x01K\x01u.", 18), "a Python pickle"}};
  for (const auto& [content, what] : files) {
    CAPTURE(what);
    const std::string path = tmp_path("not_safetensors.bin");
    write_file(path, std::vector<unsigned char>(content.begin(), content.end()));
    const std::string msg = scratch::message_of<ember::format_error>([&] { ember::io::load_checkpoint(net, path); });
    CHECK(scratch::contains(msg, path + ": not a safetensors file: it is " + what));
    CHECK(scratch::contains(msg, "save_file(model.state_dict(), path)"));
    CHECK_FALSE(scratch::contains(msg, "header length"));
  }
}

TEST_CASE("load_state_dict: strict as load_checkpoint; strict = false reports missing and unexpected keys") {
  auto net = make_net<float>(88);
  const std::string path = tmp_path("backbone.safetensors");
  ember::io::save_checkpoint(net, path, {{"note", "pretrained"}});
  // make_net's backbone with another head.
  ember::Generator gen(89);
  auto with_head = [&](const char* head, std::int64_t classes) {
    ember::nn::Sequential m("CNNNet", {});
    m.add("conv1", ember::nn::Conv2d(1, 2, 3, 1, 0, 1, 1, true, gen));
    m.add("batchnorm1", ember::nn::BatchNorm2d(2));
    m.add("relu1", ember::nn::ReLU());
    m.add("flatten", ember::nn::Flatten());
    m.add(head, ember::nn::Linear(2 * 4 * 4, classes, true, gen));
    return m;
  };
  // A head of another name: strict fails, strict = false loads the rest.
  ember::nn::Sequential tuned = with_head("head", 3);
  const auto before = snapshot(tuned);
  CHECK_THROWS_AS(ember::io::load_state_dict(tuned, path), ember::format_error);
  CHECK(snapshot(tuned) == before);
  const ember::io::LoadResult r = ember::io::load_state_dict(tuned, path, false);
  CHECK(r.missing_keys == std::vector<std::string>{"head.weight", "head.bias"});
  CHECK(r.unexpected_keys == std::vector<std::string>{"fc1.weight", "fc1.bias"});
  CHECK(r.metadata.at("note") == "pretrained");
  const auto src = snapshot(net), now = snapshot(tuned);
  CHECK(now.at("conv1.weight") == src.at("conv1.weight"));
  CHECK(now.at("batchnorm1.running_var") == src.at("batchnorm1.running_var"));
  CHECK(now.at("head.weight") == before.at("head.weight"));  // missing: left as it was
  // A shape that differs is an error either way, and nothing changes.
  ember::nn::Sequential wider = with_head("fc1", 5);
  const auto wider_before = snapshot(wider);
  const std::string msg = scratch::message_of<ember::format_error>([&] { ember::io::load_state_dict(wider, path, false); });
  CHECK(scratch::contains(msg, "tensor 'fc1.weight' has shape [3, 32], the model expects [5, 32]"));
  CHECK(snapshot(wider) == wider_before);
}

TEST_CASE("frozen parameters are saved and loaded as any other") {
  auto net = make_net<float>(90);
  net.requires_grad_(false);
  const std::string path = tmp_path("frozen.safetensors");
  ember::io::save_checkpoint(net, path);
  auto other = make_net<float>(91);
  ember::io::load_checkpoint(other, path);
  CHECK(snapshot(other) == snapshot(net));
}

// ------------------------------------------------------------------------------- format/json.hpp (headers)

TEST_CASE("format::Json reads what nlohmann's parser reads, to the same values, and writes JSON that reads back") {
  using ember::format::Json;
  const std::vector<std::string> docs = {
      R"({})", R"([])", R"(  {"a" : [1, -2, 3.5, 1e3, -0.25e-2, 0, -0] , "b":{"c":null,"d":true,"e":false}} )",
      R"({"__metadata__":{"epoch":"3","classes":"[\"a\",\"b\"]"},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})",
      R"(["\"\\\/\b\f\n\r\t", "\u00e9\u4e2d\ud83d\ude00", "caf\u00C9", "tab\there"])",
      "[\"\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80\"]",  // UTF-8 as it is
      R"([18446744073709551615, -9223372036854775808, 18446744073709551616, 0.1, 1.7976931348623157e308, 5e-324])",
      R"([[[[[[[[[[1]]]]]]]]]])"};
  for (const auto& text : docs) {
    CAPTURE(text);
    const Json ours = Json::parse(text);
    const nlohmann::json theirs = nlohmann::json::parse(text);
    CHECK(nlohmann::json::parse(ours.dump()) == theirs);
    CHECK(Json::parse(ours.dump()).dump() == ours.dump());  // stable
  }
  const Json j = Json::parse(R"({"u": 18446744073709551615, "i": -5, "d": 0.1, "s": "x"})");
  CHECK(j.find("u")->as_unsigned() == 18446744073709551615ull);
  CHECK(j.find("i")->as_integer() == -5);
  CHECK_FALSE(j.find("i")->is_unsigned());
  CHECK(j.find("d")->as_double() == 0.1);
  CHECK_FALSE(j.find("d")->is_integer());
  CHECK(j.find("missing") == nullptr);
  CHECK_THROWS_AS(j.find("s")->as_double(), std::invalid_argument);
  CHECK(Json::array_of(std::vector<float>{0.485f, 2.0f}).dump() == "[0.48500001430511475,2]");
  CHECK(Json::array_of(std::vector<std::string>{"a\"b", "\x01"}).dump() == R"(["a\"b","\u0001"])");
  // A string that is not UTF-8 is written with U+FFFD, so the text stays valid JSON.
  CHECK(Json(std::string("a\xff" "b")).dump() == "\"a\xef\xbf\xbd" "b\"");
}

TEST_CASE("format::Json refuses malformed text with the offset, and numbers no double holds as out of range") {
  using ember::format::Json;
  using ember::format::JsonError;
  const std::vector<std::pair<std::string, std::size_t>> bad = {
      {"", 0},          {"{", 1},           {"[1,]", 3},       {"{\"a\" 1}", 5},     {"[01]", 1},
      {"[1.]", 3},      {"[-]", 2},         {"[1e]", 3},       {"tru", 0},          {"\"abc", 4},
      {"\"\\x\"", 2},   {"\"\\ud800\"", 7}, {"\"\\udc00\"", 7}, {"\"a\nb\"", 2},     {"[1] x", 4},
      {"{\"a\":1,\"a\":2}", 7}, {"\"\xc0\xaf\"", 1}, {"\"\xed\xa0\x80\"", 1}, {"\"\\u12G4\"", 5}};
  for (const auto& [text, offset] : bad) {
    CAPTURE(text);
    try {
      Json::parse(text);
      FAIL("parsed");
    } catch (const JsonError& e) {
      CHECK(e.offset == offset);
      CHECK_FALSE(e.out_of_range);
    }
  }
  std::string deep(Json::kMaxDepth + 2, '[');
  CHECK_THROWS_AS(Json::parse(deep), JsonError);
  try {
    Json::parse("[1e999]");
    FAIL("parsed");
  } catch (const JsonError& e) {
    CHECK(e.out_of_range);
    CHECK(e.offset == 1);
  }
}
