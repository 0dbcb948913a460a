-- Run once by the postgres image, when it creates its data folder (docker-compose.yml):
-- the desk's database beside the Rasa and action servers' (POSTGRES_DB, avrr), as
-- `make cluster` makes them (bot/cluster.py). The tables are bot.migrate's.
CREATE DATABASE desk;
