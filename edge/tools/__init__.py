"""The device's one-shot commands over the layers below: `edge config check` (`config_check`), `edge collect`
(`collect`) and `edge predict` (`predict`). Nothing below the CLI imports them."""
