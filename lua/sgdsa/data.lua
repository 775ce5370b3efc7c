-- sgdsa.data - datasets for training scripts: Fashion-MNIST, MNIST, CIFAR-10,
-- CIFAR-100 and the user's own HDF5 files, as loaders of float32 batches.
--
--   local data = sg.data.fashion_mnist{ batch = 128, pad = 2 }
--   for epoch = 1, 10 do
--     for x, y in data.train:batches() do ... end      -- x: N x C x H x W, y: int32 N
--   end                       -- batches{reuse = true}: no allocation, x/y overwritten
--                             -- batches{device = "cuda"}: the same, on the GPU,
--                             -- the next batch's copy overlapping this step
--   end
--   data.test, data.val (with validation = N), data.info (shape, classes, mean, std)
--
-- Options (an unknown key is an error listing these):
--   dir        directory of the files; else $SGDSA_DATA/<subdir> or $SGDSA_DATA
--              (SGDSA_DATA set and not empty must name an existing directory);
--              else the default
--   batch      images per training batch (128); test_batch (default: batch)
--   shuffle    reshuffle the training set every epoch (true)
--   drop_last  drop the last partial training batch (false)
--   normalize  true: per-channel mean/std of the training set (default);
--              {mean = {...}, std = {...}} (numbers allowed for one channel); false: none
--   pad        zero padding on each side (2 turns 28x28 into 32x32)
--   augment    false (default) or {crop = 4, flip = true}
--   validation N images held out of the training set (chosen by the seed)
--   limit      use only the first N training images; test_limit likewise
--   seed       own generators (Generator(seed, "shuffle"/"augment"/"validation"));
--              default: the run's streams sg.stream("shuffle"), ("augment"), ("validation")
--   prefetch   batches prepared ahead by a background thread (2; 0 = none)
--   workers    threads sharing the making of one batch (1; 2-4 on a GPU run)
-- cifar100 adds label = "fine" | "coarse"; hdf5 adds file, test_file, images,
-- labels, test_images, test_labels, layout ("NCHW" | "NHWC"), classes.
--
-- Pixels are scaled to [0, 1] (uint8 / 255) before normalization; padding is
-- black (0) before normalization. Batches depend only on (seed, epoch,
-- position): a loader's :state() restored with :set_state() replays exactly.
local core = require "sgdsa.core"
local options = require "sgdsa.options"
local D = core.data

local M = {}

local DEFAULT_FMNIST = "/usr/share/datasets/fashion-mnist"

-- ---- options ---------------------------------------------------------------------
local COMMON = { "dir", "batch", "test_batch", "shuffle", "drop_last", "normalize", "pad",
                 "augment", "validation", "limit", "test_limit", "seed", "prefetch",
                 "workers" }
local EXTRA = {
  cifar100 = { "label" },
  hdf5 = { "file", "test_file", "images", "labels", "test_images", "test_labels", "layout",
           "classes" },
}

local function check_opts(kind, opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(string.format("sgdsa.data.%s: expected a table of options, got %s", kind, type(opts)), 3)
  end
  local allowed = {}
  for _, k in ipairs(COMMON) do allowed[k] = true end
  for _, k in ipairs(EXTRA[kind] or {}) do allowed[k] = true end
  options.check(opts, allowed, "sgdsa.data." .. kind, 2)
  return opts
end

local exists = require("sgdsa.sys").readable

-- Candidate directories: the dir option, else $SGDSA_DATA/<sub>, else defaults.
-- An SGDSA_DATA that is set (not empty) but not a directory is an error: a
-- typo there must not quietly fall back to the defaults.
local function candidates(kind, opts, sub, defaults)
  if opts.dir then return { opts.dir } end
  local list = {}
  local env = os.getenv("SGDSA_DATA")
  if env and env ~= "" then
    local _, what = core.exists(env)
    if what ~= "directory" then
      error(string.format("sgdsa.data.%s: SGDSA_DATA=%s is not %s; set it to the directory holding "
                          .. "the data sets (or unset it for the defaults: %s)", kind, env,
                          what and "a directory" or "an existing directory",
                          table.concat(defaults, ", ")), 0)
    end
    list[#list + 1] = env .. "/" .. sub
    list[#list + 1] = env
  end
  for _, d in ipairs(defaults) do list[#list + 1] = d end
  return list
end

-- The first directory holding every file (each file may have alternative names).
local function find_dir(kind, dirs, files, hint)
  for _, dir in ipairs(dirs) do
    local found = {}
    for i, alts in ipairs(files) do
      for _, name in ipairs(alts) do
        if exists(dir .. "/" .. name) then found[i] = dir .. "/" .. name break end
      end
      if not found[i] then break end
    end
    if #found == #files then return found end
  end
  local tried = {}
  for _, dir in ipairs(dirs) do tried[#tried + 1] = dir .. "/" .. files[1][1] end
  error(string.format("sgdsa.data.%s: data not found; tried %s. %s", kind,
                      table.concat(tried, ", "), hint), 0)
end

-- ---- loaders ---------------------------------------------------------------------
local Loader = {}
Loader.__index = Loader

-- Bind the generators on first use, so the run's seed applies even when it is
-- set after the data object was built.
local function bind(self)
  if self.bound then return end
  self.bound = true
  local st = { epoch = 0, index = 0 }
  if self.gens.shuffle then st.shuffle = self.gens.shuffle():state() end
  if self.gens.augment then st.augment = self.gens.augment():state() end
  self.c:set_state(st)
end

-- A batch taken ahead by a lookahead iterator (self.pending = that
-- iterator's {slot, first, cuda}) is settled before anything else uses the loader: its copy is
-- waited for, and with `rewind` the C loader is put back to where that batch
-- starts (`first`), so that it is made again (batches depend only on the
-- position).
local function settle(self, rewind)
  local p = self.pending
  if not p then return end
  self.pending = nil
  if p.cuda then core.cuda.input_wait(p.slot) end
  if rewind then
    local st = self.c:state()
    st.index = p.first
    self.c:set_state(st)
  end
end

--- Data-parallel runs: this loader makes only slice `rank` (0-based) of
--- `count` of every batch (core/data.h, sg_loader_set_shard): contiguous,
--- n*rank//count to n*(rank+1)//count of a batch of n. Sizes, positions and
--- the state stay the whole batches'. Iterators hand out (x, y, total):
--- total is the whole batch's image count.
function Loader:shard(rank, count)
  settle(self, true)
  self.c:shard(rank, count)
  self.shards = count > 1 and {rank = rank, count = count} or nil
end

function Loader:size() return self.c:size() end
function Loader:nbatches() return self.c:nbatches() end
function Loader:batch_size() return self.c:batch() end
function Loader:shape() return self.c:shape() end

-- The iterator: fresh tensors per batch, or with {reuse = true} the same two
-- loader-owned tensors overwritten by every batch (no allocation per step;
-- clone what must outlive the step).
--
-- With {device = "cuda"} the reused tensors live on the GPU and every batch
-- is copied into them straight from the loader's batch buffer (on the
-- input-copy stream; pinned when core.cuda.use_pinned_loader_memory(true) was
-- on when the data was built); labels stay int32.
--
-- {lookahead = true} (the default on "cuda"; on "cpu" it implies reuse):
-- when the iterator hands out batch k it already takes batch k+1 from the
-- loader, into a second pair of tensors; on the GPU its copy then runs while
-- step k computes (the compute queued after the next call waits for it).
-- Batch k stays valid until the next call, as with reuse. loader:state()
-- does not count the batch taken ahead; loader:next(), :batches(), :epoch()
-- and :set_state() put it back first.
local function check_iter_opts(o)
  return options.check(o, {device = true, reuse = true, lookahead = true}, "loader", 3)
end

local function iterator(self, o)
  o = check_iter_opts(o)
  local c = self.c
  local dev = o.device or "cpu"
  if dev ~= "cpu" and dev ~= "cuda" then
    error(string.format("loader: device must be \"cpu\" or \"cuda\", got %s", tostring(dev)), 3)
  end
  local ahead = o.lookahead
  if ahead == nil then ahead = dev == "cuda" end
  if type(ahead) ~= "boolean" then
    error(string.format("loader: lookahead must be true or false, got %s", tostring(ahead)), 3)
  end
  local cuda = dev == "cuda"
  if cuda and not self.xd then
    local ok, why = core.cuda.available()
    if not ok then error("loader: device \"cuda\": " .. tostring(why), 3) end
    self.xd = {core.zeros(1):cuda(), core.zeros(1):cuda()}
    self.yd = {core.zeros(1, "int32"):cuda(), core.zeros(1, "int32"):cuda()}
  end
  if not cuda and (o.reuse or ahead) and not self.xr then
    self.xr = {core.zeros(1), core.zeros(1)}
    self.yr = {core.zeros(1, "int32"), core.zeros(1, "int32")}
  end
  local xs, ys = cuda and self.xd or self.xr, cuda and self.yd or self.yr
  -- (a lookahead iterator of the same loader may have taken a batch ahead
  -- since: every call puts it back first)
  if not ahead then
    if not cuda and not o.reuse then
      return function()
        settle(self, true)
        return c:next()
      end
    end
    local x, y = xs[1], ys[1]
    return function()
      settle(self, true)
      local n, _, total = c:next_into(x, y)
      if n then return x, y, total end
    end
  end
  -- this iterator's record of the batch it took ahead (one table, reused),
  -- and the whole batch's size in each slot
  local mine, done, totals = {cuda = cuda}, false, {0, 0}
  return function()
    if done then return nil end
    local s = 0
    if self.pending == mine then
      s = mine.slot
      self.pending = nil
    else
      settle(self, true)
      local n, _, total = c:next_into(xs[1], ys[1], cuda and 0 or nil)
      if not n then
        done = true
        return nil
      end
      totals[1] = total
    end
    -- batch k is in slot s: the loader may reuse its buffer once the copy is
    -- done, and the compute queued from now on reads it
    if cuda then
      core.cuda.input_wait(s)
      core.cuda.input_ready(s)
    end
    -- take batch k+1 into the other slot: the copy starts after the compute
    -- queued so far (step k-1, the last reader of that slot)
    local s2 = 1 - s
    local n, first, total = c:next_into(xs[s2 + 1], ys[s2 + 1], cuda and s2 or nil)
    if n then
      mine.slot, mine.first = s2, first
      totals[s2 + 1] = total
      self.pending = mine
    else
      done = true
    end
    return xs[s + 1], ys[s + 1], totals[s + 1]
  end
end

-- Iterate over the rest of the current epoch; when it is over, start the next.
function Loader:batches(o)
  bind(self)
  settle(self, true)
  local e, i = self.c:position()
  if i >= self.c:size() then self.c:start_epoch(e + 1) end
  return iterator(self, o)
end

-- Start epoch n (1-based) and iterate over it.
function Loader:epoch(n, o)
  bind(self)
  if math.type(n) ~= "integer" or n < 1 then
    error(string.format("loader:epoch: epoch must be an integer >= 1, got %s", tostring(n)), 2)
  end
  settle(self, false)
  self.c:start_epoch(n - 1)
  return iterator(self, o)
end

-- The next batch (x, y), or nil at the end of the epoch.
function Loader:next()
  bind(self)
  settle(self, true)
  return self.c:next()
end

-- The position: {epoch (1-based), index (images of the epoch delivered),
-- perm (int32 tensor, 0-based order of the epoch), shuffle = {4}, augment = {4}}.
-- A batch taken ahead by a lookahead iterator is not counted as delivered.
function Loader:state()
  bind(self)
  local st = self.c:state()
  st.epoch = st.epoch + 1
  if self.pending then st.index = self.pending.first end
  return st
end

function Loader:set_state(st)
  if type(st) ~= "table" or math.type(st.epoch) ~= "integer" or st.epoch < 1 then
    error("loader:set_state: expected a table from loader:state() (epoch >= 1)", 2)
  end
  self.bound = true
  settle(self, false)
  local s = {}
  for k, v in pairs(st) do s[k] = v end
  s.epoch = st.epoch - 1
  self.c:set_state(s)
end

function Loader:free()
  settle(self, false)
  self.c:free()
end

function Loader:__tostring() return tostring(self.c) end

local function new_loader(ds, o, gens, info)
  local sh, au = gens.shuffle and gens.shuffle(), gens.augment and gens.augment()
  local l = setmetatable({ c = D.loader(ds, o, sh, au), gens = gens, bound = false, info = info,
                           dataset = ds }, Loader)
  return l
end

-- ---- assembling a data object ----------------------------------------------------
local function per_channel(v, c, what)
  if type(v) == "number" then
    local t = {}
    for i = 1, c do t[i] = v end
    return t
  end
  if type(v) ~= "table" or #v ~= c then
    error(string.format("sgdsa.data: normalize.%s needs %d number(s), one per channel", what, c), 0)
  end
  return v
end

local function positive_int(opts, k, kind)
  local v = opts[k]
  if v ~= nil and (math.type(v) ~= "integer" or v < 0) then
    error(string.format("sgdsa.data.%s: %s must be a non-negative integer, got %s", kind, k,
                        tostring(v)), 0)
  end
  return v
end

-- A data set prints as a summary: the images, the classes, each split with
-- its batches, the normalization and the augmentation.
local DataSet = {__name = "sgdsa.data set"}
function DataSet.__tostring(d)
  local i = d.info
  local lines = {string.format("sgdsa.data.%s: %d classes, images %s%s", i.name, i.classes,
                               table.concat(i.shape, "x"),
                               i.pad > 0 and string.format(" (%s padded by %d)",
                                                           table.concat(i.source_shape, "x"), i.pad) or "")}
  for _, split in ipairs{"train", "val", "test"} do
    local l = d[split]
    if l then
      lines[#lines + 1] = string.format("  %-5s %6d images, batch %d, %d batches per epoch", split,
                                        l:size(), l:batch_size(), l:nbatches())
    end
  end
  local aug = i.augment and string.format("crop %d, flip %s", i.augment.crop, tostring(i.augment.flip)) or "none"
  lines[#lines + 1] = string.format("  normalized %s, augmentation %s", i.mean and "per channel" or "no", aug)
  return table.concat(lines, "\n")
end

-- An unknown key k of the table option `opt` (normalize, augment).
local function sub_option_error(kind, opt, k, allowed)
  error(string.format("sgdsa.data.%s: unknown option '%s.%s' (allowed: %s)%s", kind, opt, tostring(k),
                      table.concat(allowed, ", "), options.did_you_mean(k, allowed)), 0)
end

local function build(kind, opts, train, test)
  for _, k in ipairs { "batch", "test_batch", "pad", "validation", "limit", "test_limit", "prefetch", "workers" } do
    positive_int(opts, k, kind)
  end
  if opts.limit then train:limit(math.min(opts.limit, train:size())) end
  if opts.test_limit and test then test:limit(math.min(opts.test_limit, test:size())) end

  local gen = function(name)
    if opts.seed ~= nil then
      local g = core.Generator(opts.seed, name)
      return function() return g end
    end
    return function() return core.stream(name) end
  end

  local val
  if opts.validation and opts.validation > 0 then
    val = train:split(opts.validation, gen("validation")())
  end

  local shape = train:shape()
  local c = shape[1]
  local mean, std
  local norm = opts.normalize
  if norm == nil then norm = true end
  if norm == true then
    mean, std = train:stats()
    for i = 1, c do if std[i] <= 0 then std[i] = 1 end end -- constant channel
  elseif type(norm) == "table" then
    for k in pairs(norm) do
      if k ~= "mean" and k ~= "std" then sub_option_error(kind, "normalize", k, { "mean", "std" }) end
    end
    mean, std = per_channel(norm.mean, c, "mean"), per_channel(norm.std, c, "std")
  elseif norm ~= false then
    error(string.format("sgdsa.data.%s: normalize must be true, false or {mean=, std=}", kind), 0)
  end

  local aug = opts.augment
  local crop, flip = 0, false
  if aug then
    if type(aug) ~= "table" then
      error(string.format("sgdsa.data.%s: augment must be false or {crop = N, flip = true}", kind), 0)
    end
    for k in pairs(aug) do
      if k ~= "crop" and k ~= "flip" then sub_option_error(kind, "augment", k, { "crop", "flip" }) end
    end
    crop, flip = aug.crop or 0, aug.flip and true or false
  end

  local pad = opts.pad or 0
  local info = {
    name = kind, classes = train:classes(), shape = { c, shape[2] + 2 * pad, shape[3] + 2 * pad },
    source_shape = shape, mean = mean, std = std, pad = pad,
    ntrain = train:size(), ntest = test and test:size() or 0, nval = val and val:size() or 0,
    augment = aug and { crop = crop, flip = flip } or false,
  }
  local batch = opts.batch or 128
  local base = { pad = pad, mean = mean, std = std, prefetch = opts.prefetch, workers = opts.workers }
  local function with(t)
    local o = {}
    for k, v in pairs(base) do o[k] = v end
    for k, v in pairs(t) do o[k] = v end
    return o
  end
  local shuffle = opts.shuffle ~= false
  local result = setmetatable({ info = info, datasets = { train = train, test = test, val = val } }, DataSet)
  result.train = new_loader(train, with { batch = batch, shuffle = shuffle,
                                          drop_last = opts.drop_last and true or false,
                                          crop = crop, flip = flip },
                            { shuffle = shuffle and gen("shuffle") or nil,
                              augment = (crop > 0 or flip) and gen("augment") or nil }, info)
  local tb = opts.test_batch or batch
  if test then
    result.test = new_loader(test, with { batch = tb, shuffle = false }, {}, info)
  end
  if val then
    result.val = new_loader(val, with { batch = tb, shuffle = false }, {}, info)
  end
  -- Error (naming both shapes) unless the batches are c x h x w for `who`.
  function result.check_input(shape_chw, who)
    train:check_shape(pad, shape_chw, who)
  end
  return result
end

-- ---- the datasets ------------------------------------------------------------------
local IDX_FILES = {
  { "train-images-idx3-ubyte.gz", "train-images-idx3-ubyte", "train-images.idx3-ubyte" },
  { "train-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte", "train-labels.idx1-ubyte" },
  { "t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte" },
  { "t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte" },
}

local function idx_set(kind, opts, sub, defaults, hint)
  local f = find_dir(kind, candidates(kind, opts, sub, defaults), IDX_FILES, hint)
  local train = D.idx(f[1], f[2], 10, kind .. " train")
  local test = D.idx(f[3], f[4], 10, kind .. " test")
  return build(kind, opts, train, test)
end

function M.fashion_mnist(opts)
  opts = check_opts("fashion_mnist", opts)
  return idx_set("fashion_mnist", opts, "fashion-mnist", { DEFAULT_FMNIST, "data/fashion-mnist" },
    "Install the Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist, "
    .. "files in " .. DEFAULT_FMNIST .. "), or set dir= or SGDSA_DATA to a directory with the "
    .. "four IDX files (train-images-idx3-ubyte.gz, ...).")
end

function M.mnist(opts)
  opts = check_opts("mnist", opts)
  return idx_set("mnist", opts, "mnist", { "/usr/share/datasets/mnist", "data/mnist" },
    "Put the four MNIST IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    .. "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz, from "
    .. "http://yann.lecun.com/exdb/mnist/) in a directory and pass dir= or set SGDSA_DATA.")
end

local CIFAR10_HINT = "Download the CIFAR-10 binary version cifar-10-binary.tar.gz from "
  .. "https://www.cs.toronto.edu/~kriz/cifar.html, unpack it (tar xzf) and pass "
  .. "dir=.../cifar-10-batches-bin or set SGDSA_DATA to the directory holding cifar-10-batches-bin."

function M.cifar10(opts)
  opts = check_opts("cifar10", opts)
  local files = {}
  for i = 1, 5 do files[i] = { "data_batch_" .. i .. ".bin" } end
  files[6] = { "test_batch.bin" }
  local f = find_dir("cifar10", candidates("cifar10", opts, "cifar-10-batches-bin", { "data/cifar-10-batches-bin" }),
                     files, CIFAR10_HINT)
  local train = D.cifar({ f[1], f[2], f[3], f[4], f[5] }, "cifar10", false, "cifar10 train")
  local test = D.cifar({ f[6] }, "cifar10", false, "cifar10 test")
  return build("cifar10", opts, train, test)
end

function M.cifar100(opts)
  opts = check_opts("cifar100", opts)
  local label = opts.label or "fine"
  if label ~= "fine" and label ~= "coarse" then
    error("sgdsa.data.cifar100: label must be \"fine\" (100 classes) or \"coarse\" (20), got "
          .. tostring(label), 2)
  end
  local f = find_dir("cifar100", candidates("cifar100", opts, "cifar-100-binary", { "data/cifar-100-binary" }),
    { { "train.bin" }, { "test.bin" } },
    "Download the CIFAR-100 binary version cifar-100-binary.tar.gz from "
    .. "https://www.cs.toronto.edu/~kriz/cifar.html, unpack it and pass dir=.../cifar-100-binary "
    .. "or set SGDSA_DATA to the directory holding cifar-100-binary.")
  local fine = label == "fine"
  local train = D.cifar({ f[1] }, "cifar100", fine, "cifar100 train")
  local test = D.cifar({ f[2] }, "cifar100", fine, "cifar100 test")
  return build("cifar100", opts, train, test)
end

-- User HDF5 data: file (relative to dir when given), datasets images/labels
-- (default "train/images", "train/labels") and test_images/test_labels
-- (default "test/images", "test/labels"; test_images = false: no test set),
-- optionally in test_file.
function M.hdf5(opts)
  opts = check_opts("hdf5", opts)
  if type(opts.file) ~= "string" then
    error("sgdsa.data.hdf5: file = \"path.h5\" is required", 2)
  end
  local function path(p)
    if opts.dir and p:sub(1, 1) ~= "/" then return opts.dir .. "/" .. p end
    return p
  end
  if opts.layout ~= nil and opts.layout ~= "NCHW" and opts.layout ~= "NHWC" then
    error("sgdsa.data.hdf5: layout must be \"NCHW\" or \"NHWC\", got " .. tostring(opts.layout), 2)
  end
  local file = path(opts.file)
  if not exists(file) then
    error("sgdsa.data.hdf5: cannot open " .. file .. " (no such file or not readable)", 2)
  end
  local train = D.hdf5(file, { images = opts.images or "train/images",
                               labels = opts.labels or "train/labels",
                               layout = opts.layout, classes = opts.classes }, "hdf5 train")
  local test
  if opts.test_images ~= false then
    local tf = opts.test_file and path(opts.test_file) or file
    test = D.hdf5(tf, { images = opts.test_images or "test/images",
                        labels = opts.test_labels or "test/labels",
                        layout = opts.layout, classes = opts.classes or train:classes() },
                  "hdf5 test")
    if test:classes() ~= train:classes() or table.concat(test:shape(), "x") ~= table.concat(train:shape(), "x") then
      error(string.format("sgdsa.data.hdf5: test images are %s with %d classes but training "
                          .. "images are %s with %d classes", table.concat(test:shape(), "x"),
                          test:classes(), table.concat(train:shape(), "x"), train:classes()), 2)
    end
  end
  return build("hdf5", opts, train, test)
end

return M
