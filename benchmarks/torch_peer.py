"""The PyTorch (eager) peer: nn.Modules as a torch user writes them (NCHW images, logits out, losses on
logits), trained by a plain loop over whole tensors."""
from __future__ import annotations

from .workloads import Arch, Work, batch_starts, loss_weights


def torch_modules():
    import torch
    from torch import nn

    class Dense(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                                     nn.Linear(64, 10))

        def forward(self, pixels):
            return (self.net(pixels),)

    class Headline(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(10000, 512)
            self.lstm = nn.LSTM(512, 32, batch_first=True)
            self.aux_output = nn.Linear(32, 1)
            self.head = nn.Sequential(nn.Linear(32 + 5, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                                      nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))

        def forward(self, main_input, aux_input):
            _, (h, _) = self.lstm(self.embedding(main_input))
            encoded = h[-1]
            return self.head(torch.cat([encoded, aux_input], dim=1)), self.aux_output(encoded)

    class SharedLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.shared_lstm = nn.LSTM(256, 64, batch_first=True)
            self.same_author = nn.Linear(128, 1)

        def encode(self, tweet):
            _, (h, _) = self.shared_lstm(tweet)
            return h[-1]

        def forward(self, tweet_a, tweet_b):
            return (self.same_author(torch.cat([self.encode(tweet_a), self.encode(tweet_b)], dim=1)),)

    class SharedVision(nn.Module):
        def __init__(self):
            super().__init__()
            self.vision_model = nn.Sequential(nn.Conv2d(1, 64, 3), nn.Conv2d(64, 64, 3), nn.MaxPool2d(2),
                                              nn.Flatten())
            self.same = nn.Linear(2 * 64 * 11 * 11, 1)

        def forward(self, digit_a, digit_b):
            return (self.same(torch.cat([self.vision_model(digit_a), self.vision_model(digit_b)], dim=1)),)

    class Inception(nn.Module):
        def __init__(self):
            super().__init__()
            self.tower_1 = nn.Sequential(nn.Conv2d(3, 64, 1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU())
            self.tower_2 = nn.Sequential(nn.Conv2d(3, 64, 1), nn.ReLU(), nn.Conv2d(64, 64, 5, padding=2), nn.ReLU())
            self.tower_3 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(3, 64, 1), nn.ReLU())
            self.head = nn.Sequential(nn.MaxPool2d(16), nn.Flatten(), nn.Linear(192 * 16 * 16, 10))

        def forward(self, input_img):
            module = torch.cat([self.tower_1(input_img), self.tower_2(input_img), self.tower_3(input_img)], dim=1)
            return (self.head(module),)

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.y = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            return (x + self.y(x),)

    class MnistConvnet(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                                     nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.5), nn.Linear(5 * 5 * 64, 10))

        def forward(self, image):
            return (self.net(image),)

    def batch_norm(channels, dims=2):  # Keras' defaults: momentum 0.99 (torch counts 1 - it), epsilon 1e-3
        return (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)(channels, eps=1e-3, momentum=0.01)

    class TimeseriesFCN(nn.Module):
        def __init__(self):
            super().__init__()
            blocks = []
            for channels in (1, 64, 64):
                blocks += [nn.Conv1d(channels, 64, 3, padding=1), batch_norm(64, dims=1), nn.ReLU()]
            self.net = nn.Sequential(*blocks, nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(64, 2))

        def forward(self, series):  # (batch, steps, 1) as stored; torch convolves (batch, channels, steps)
            return (self.net(series.transpose(1, 2)),)

    def separable(channels, filters):
        return nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
                             nn.Conv2d(channels, filters, 1))

    class XceptionBlock(nn.Module):
        def __init__(self, channels, size):
            super().__init__()
            self.body = nn.Sequential(nn.ReLU(), separable(channels, size), batch_norm(size), nn.ReLU(),
                                      separable(size, size), batch_norm(size), nn.MaxPool2d(3, 2, padding=1))
            self.shortcut = nn.Conv2d(channels, size, 1, stride=2)

        def forward(self, x):
            return self.body(x) + self.shortcut(x)

    class MiniXception(nn.Module):
        def __init__(self):
            super().__init__()
            self.entry = nn.Sequential(nn.Conv2d(3, 128, 3, stride=2, padding=1), batch_norm(128), nn.ReLU())
            self.blocks = nn.Sequential(XceptionBlock(128, 256), XceptionBlock(256, 512), XceptionBlock(512, 728))
            self.exit = nn.Sequential(separable(728, 1024), batch_norm(1024), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                      nn.Flatten(), nn.Dropout(0.25), nn.Linear(1024, 1))

        def forward(self, image):
            return (self.exit(self.blocks(self.entry(image / 255.0))),)

    class BidirectionalIMDB(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(20000, 128)
            self.bidirectional = nn.LSTM(128, 64, batch_first=True, bidirectional=True)
            self.bidirectional_1 = nn.LSTM(128, 64, batch_first=True, bidirectional=True)
            self.predictions = nn.Linear(128, 1)

        def forward(self, tokens):
            sequences, _ = self.bidirectional(self.embedding(tokens))
            _, (h, _) = self.bidirectional_1(sequences)
            return (self.predictions(torch.cat([h[0], h[1]], dim=1)),)

    class TransformerClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.token_emb = nn.Embedding(20000, 32)
            self.pos_emb = nn.Parameter(torch.zeros(200, 32))
            # Keras' MultiHeadAttention(num_heads=2, key_dim=32): heads of 32 each, which nn.MultiheadAttention
            # (heads splitting the embedding) cannot make
            self.query, self.key, self.value = nn.Linear(32, 64), nn.Linear(32, 64), nn.Linear(32, 64)
            self.attention_output = nn.Linear(64, 32)
            self.norm1, self.norm2 = nn.LayerNorm(32, eps=1e-6), nn.LayerNorm(32, eps=1e-6)
            self.ffn = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32), nn.Dropout(0.1))
            self.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(32, 20), nn.ReLU(), nn.Dropout(0.1), nn.Linear(20, 2))
            self.dropout = nn.Dropout(0.1)

        def forward(self, tokens):
            x = self.token_emb(tokens) + self.pos_emb
            heads = [f(x).view(len(x), -1, 2, 32).transpose(1, 2) for f in (self.query, self.key, self.value)]
            attended = torch.nn.functional.scaled_dot_product_attention(*heads)
            attended = self.attention_output(attended.transpose(1, 2).reshape(len(x), -1, 64))
            x = self.norm1(x + self.dropout(attended))
            x = self.norm2(x + self.ffn(x))
            return (self.head(x.mean(dim=1)),)

    return {"dense": Dense, "headline": Headline, "shared_lstm": SharedLSTM, "shared_vision": SharedVision,
            "inception": Inception, "residual": Residual, "mnist_convnet": MnistConvnet,
            "timeseries_fcn": TimeseriesFCN, "mini_xception": MiniXception, "bidirectional_imdb": BidirectionalIMDB,
            "transformer_classifier": TransformerClassifier}


def torch_optimizer(config, parameters):
    import torch
    if config.type == "adam":
        return torch.optim.Adam(parameters, lr=config.learning_rate, betas=(config.beta_1, config.beta_2),
                                eps=config.epsilon)
    if config.type == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=config.learning_rate, alpha=config.rho, eps=config.epsilon,
                                   momentum=config.momentum, centered=config.centered)
    return torch.optim.SGD(parameters, lr=config.learning_rate, momentum=config.momentum, nesterov=config.nesterov)


def torch_loss(name: str):
    """Keras' losses for outputs given as logits (the final softmax/sigmoid folded into the loss)."""
    import torch.nn.functional as F
    return {"categorical_crossentropy": F.cross_entropy,        # targets: class probabilities
            "sparse_categorical_crossentropy": F.cross_entropy,  # targets: class indices
            "binary_crossentropy": F.binary_cross_entropy_with_logits,
            "mse": F.mse_loss}[name]


def torch_params(net) -> int:
    """Parameters, less nn.LSTM's second bias vector (bias_hh), which Keras and specc do not have, plus the
    statistics BatchNorm keeps (running mean and variance), which Keras and specc count as weights."""
    learned = sum(p.numel() for name, p in net.named_parameters() if "bias_hh" not in name)
    return learned + sum(b.numel() for b in net.buffers() if b.is_floating_point())


def torch_work(arch_name: str, arch: Arch, model, inputs: dict, targets: dict) -> Work:
    import torch

    def tensor(array):
        if array.ndim == 4:  # NHWC -> NCHW, as a torch user keeps images
            array = array.transpose(0, 3, 1, 2).copy()
        return torch.from_numpy(array)

    net = torch_modules()[arch_name]()
    xs = [tensor(inputs[name]) for name in model.graph.inputs]
    ys = [tensor(targets[name]) for name in model.graph.outputs]
    losses = [torch_loss(model.losses()[name]) for name in model.graph.outputs]
    weights = [loss_weights(model)[name] for name in model.graph.outputs]
    optimizer = torch_optimizer(model.spec.compile.optimizer, net.parameters())
    rows = len(xs[0])

    def epoch():
        net.train()
        order = torch.randperm(rows)
        running = 0.0
        for start in batch_starts(rows, arch.batch):
            index = order[start:start + arch.batch]
            outputs = net(*(x[index] for x in xs))
            loss = sum(w * f(out, y[index]) for w, f, out, y in zip(weights, losses, outputs, ys))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            running += loss.item() * len(index)

    def infer():
        net.eval()
        with torch.inference_mode():
            for start in batch_starts(rows, arch.batch):
                net(*(x[start:start + arch.batch] for x in xs))

    def infer_one():
        net.eval()
        with torch.inference_mode():
            net(*(x[:1] for x in xs))

    return torch_params(net), epoch, infer, infer_one
